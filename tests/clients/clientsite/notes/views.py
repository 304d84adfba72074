"""The client site's views.

    /page/?marker=M[&meet=1]   two ORM queries (for notes "M-a" and "M-b"); with meet=1 a
                      rendezvous between them: CONNLOCAL_CLIENTS_PARTIES such requests meet
                      there, so that they are all in flight at once
    /notes/           the texts of every note, one per line
"""
import os
import threading
import time

from django.http import HttpResponse

from notes.models import Note

PARTIES = int(os.environ.get("CONNLOCAL_CLIENTS_PARTIES", "1"))
_met = threading.Condition()
_arrived = []


def rendezvous(timeout=30):
    deadline = time.time() + timeout
    with _met:
        _arrived.append(True)
        _met.notify_all()
        while len(_arrived) < PARTIES:
            left = deadline - time.time()
            if left <= 0:
                raise RuntimeError("only %d of %d requests met in %ss" % (
                    len(_arrived), PARTIES, timeout))
            _met.wait(left)


def page(request):
    marker = request.GET["marker"]
    first = Note.objects.filter(text=marker + "-a").count()
    if request.GET.get("meet"):
        rendezvous()
    second = len(list(Note.objects.filter(text=marker + "-b")))
    return HttpResponse("<html><head></head><body><p>%s: %d %d</p></body></html>" % (
        marker, first, second))


def listing(request):
    return HttpResponse("\n".join(note.text for note in Note.objects.all()),
                        content_type="text/plain")
