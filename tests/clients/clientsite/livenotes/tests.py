"""django-liveserver 0.1a2's LiveServerTestCase, as a Django 1.3 site used it: the test
database is in memory (sqlite, no TEST_NAME), so the only way its server thread sees the note
this test thread saved is the test thread's own connection, handed over by LiveServerThread
with ``connections._connections[alias] = conn``."""
import urllib2

from django_liveserver.testcases import LiveServerTestCase

from notes.models import Note


class LiveNotesTest(LiveServerTestCase):
    def test_the_server_thread_serves_the_test_thread_s_database(self):
        Note.objects.create(text="saved by the test thread")
        response = urllib2.urlopen(self.live_server_url + "/notes/", timeout=30)
        self.assertEqual(response.read(), "saved by the test thread")
