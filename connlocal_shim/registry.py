"""The one registry of every change connlocal_shim makes to Django.

Each change is a record (target, attribute, original, replacement) applied by one loop and undone
by walking the records in reverse, so ``uninstall()`` is exact by construction and the status
command can list what was done. Originals are read with ``vars()`` (never ``getattr``, which
would find an inherited or already-wrapped value). A record undoes only what is still ours: if
someone patched over us, theirs is left in place and a :class:`ConnlocalShimWarning` says so.
"""
import threading
import warnings

from connlocal_shim.exceptions import ConnlocalShimWarning


class _Absent(object):
    """The original of an attribute the target did not have: reverting deletes it."""

    def __repr__(self):
        return "<absent>"


ABSENT = _Absent()


def own_value(target, name):
    """The value ``target`` itself holds for ``name`` (not one found through its class)."""
    if name == "__class__":
        return type(target)
    return vars(target).get(name, ABSENT)


def _assign(target, name, value):
    if isinstance(target, threading.local):
        # A DatabaseWrapper of Django 1.2/1.3 is a threading.local, and once redirected its own
        # __setattr__ forwards to the current thread's wrapper: go to local's own slot.
        threading.local.__setattr__(target, name, value)
    elif name == "__class__":
        object.__setattr__(target, name, value)
    else:
        setattr(target, name, value)


def _remove(target, name):
    if isinstance(target, threading.local):
        threading.local.__delattr__(target, name)
    else:
        delattr(target, name)


class AttributePatch(object):
    """``setattr(target, name, replacement)``, undone by putting the original back.

    ``label`` names the target for people ("django.db.connections"), ``why`` says what the
    change is for; both appear in ``connlocal_status`` and in log lines.
    """

    def __init__(self, target, name, replacement, label, why):
        self.target = target
        self.name = name
        self.original = own_value(target, name)
        self.replacement = replacement
        self.label = label
        self.why = why

    def apply(self):
        _assign(self.target, self.name, self.replacement)

    def is_ours(self):
        return own_value(self.target, self.name) is self.replacement

    def revert(self):
        if not self.is_ours():
            warnings.warn(
                "connlocal_shim: %s was replaced by someone else after install; "
                "left as it is instead of restoring Django's original" % self.describe(),
                ConnlocalShimWarning,
                stacklevel=3,
            )
            return
        if self.original is ABSENT:
            _remove(self.target, self.name)
        else:
            _assign(self.target, self.name, self.original)

    def describe(self):
        if self.name == "__class__":
            return "%s (class of the object)" % self.label
        return "%s.%s" % (self.label, self.name)

    def as_dict(self):
        return {"target": self.describe(), "why": self.why}


def _sender_key(sender):
    from django.dispatch import dispatcher

    return getattr(dispatcher, "_make_id", id)(sender)


def has_receivers_for(signal, sender):
    """Whether any receiver of ``signal`` was connected with exactly this ``sender``."""
    key = _sender_key(sender)
    return any(entry[0][1] == key for entry in list(signal.receivers))


class SignalSenderAlias(object):
    """Receivers connected with ``sender=old`` also receive what ``new`` sends.

    A rebuilt DatabaseWrapper class sends ``connection_created`` with itself as sender; the
    receivers a site connected for the original class must still fire, exactly once.
    """

    def __init__(self, signal, old_sender, new_sender, label, why):
        self.signal = signal
        self.target = signal
        self.old_sender = old_sender
        self.new_sender = new_sender
        self.label = label
        self.why = why
        self.name = "receivers"
        self.added = []

    def apply(self):
        old_key, new_key = _sender_key(self.old_sender), _sender_key(self.new_sender)
        with self.signal.lock:
            present = set(entry[0] for entry in self.signal.receivers)
            for entry in list(self.signal.receivers):
                (receiver_key, sender_key), rest = entry[0], entry[1:]
                if sender_key == old_key and (receiver_key, new_key) not in present:
                    alias = ((receiver_key, new_key),) + tuple(rest)
                    self.signal.receivers.append(alias)
                    self.added.append(alias)
            self._clear_cache()

    def is_ours(self):
        return any(entry in self.signal.receivers for entry in self.added)

    def revert(self):
        with self.signal.lock:
            for entry in self.added:
                for index, present in enumerate(self.signal.receivers):
                    if present is entry:
                        del self.signal.receivers[index]
                        break
            self._clear_cache()
        self.added = []

    def _clear_cache(self):
        cache = getattr(self.signal, "sender_receivers_cache", None)
        if cache:
            cache.clear()

    def describe(self):
        return "%s receivers for sender %s" % (self.label, self.old_sender.__name__)

    def as_dict(self):
        return {"target": self.describe(), "why": self.why}


class Registry(object):
    """The ordered records of one installation."""

    def __init__(self):
        self.records = []

    def apply(self, record):
        record.apply()
        self.records.append(record)
        return record

    def apply_all(self, records):
        """Apply every record, or none: on a failure, undo those applied and re-raise."""
        applied = len(self.records)
        try:
            for record in records:
                self.apply(record)
        except BaseException:
            self.revert_all(down_to=applied)
            raise

    def revert_all(self, down_to=0):
        while len(self.records) > down_to:
            self.records.pop().revert()

    def find(self, target, name):
        for record in reversed(self.records):
            if record.target is target and record.name == name:
                return record
        return None

    def __iter__(self):
        return iter(list(self.records))

    def __len__(self):
        return len(self.records)
