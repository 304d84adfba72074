"""The one registry of every change connlocal_shim makes to Django.

Each change is a record (target, attribute, original, replacement) applied by one loop and undone
by walking the records in reverse, so ``uninstall()`` is exact by construction and the status
command can list what was done. Originals are read with ``vars()`` (never ``getattr``, which
would find an inherited or already-wrapped value). A record undoes only what is still ours: if
someone patched over us, theirs is left in place and uninstall() says so in a
:class:`~connlocal_shim.exceptions.ConnlocalShimWarning`.
"""
from connlocal_shim.features import is_thread_local_class


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


def _local_base(target):
    """The thread-local class ``target``'s class derives from (a DatabaseWrapper of Django
    1.2/1.3, or a local of Python's, gevent's or eventlet's), or None."""
    if isinstance(target, type):
        return None
    for cls in type(target).__mro__:
        if is_thread_local_class(cls):
            return cls
    return None


# object's own __class__ setter: it checks only that the layouts agree, and applies to objects
# whose type refuses object.__setattr__ (a threading.local, gevent's compiled local) or whose
# __setattr__ forwards (a redirected wrapper).
_CLASS_SETTER = object.__dict__["__class__"].__set__


def _assign(target, name, value):
    if name == "__class__" and not isinstance(target, type):
        _CLASS_SETTER(target, value)
        return
    local = _local_base(target)
    if local is not None:
        # A DatabaseWrapper of Django 1.2/1.3 is a threading.local, and once redirected its own
        # __setattr__ forwards to the current thread's wrapper: go to local's own slot.
        local.__setattr__(target, name, value)
    else:
        setattr(target, name, value)


def _remove(target, name):
    local = _local_base(target)
    if local is not None:
        local.__delattr__(target, name)
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
        """Put the original back; return a warning to give (after uninstall) if the patch was
        replaced by someone else, who is then left in place."""
        if not self.is_ours():
            return (
                "connlocal_shim: %s was replaced by someone else after install; "
                "left as it is instead of restoring Django's original" % self.describe()
            )
        if self.original is ABSENT:
            _remove(self.target, self.name)
        else:
            _assign(self.target, self.name, self.original)
        return None

    def describe(self):
        if self.name == "__class__":
            return "%s (class of the object)" % self.label
        return "%s.%s" % (self.label, self.name)

    def as_dict(self):
        return {"target": self.describe(), "why": self.why}


def sender_key(sender):
    """The key django.dispatch files a receiver's sender under (``_make_id``)."""
    from django.dispatch import dispatcher

    return getattr(dispatcher, "_make_id", id)(sender)


def live_receivers_with_aliases(signal, aliases):
    """A ``_live_receivers(senderkey)`` for ``signal`` (Django 1.2/1.3's Signal) that also
    returns the receivers connected for the sender a key stands for in ``aliases``
    ({key of a rebuilt class: key of its original class}), each receiver once.

    Receivers stay filed as they were connected, so connect() and disconnect() with the
    original class keep working, before and after install.
    """
    original = type(signal)._live_receivers

    def _live_receivers(senderkey):
        alias = aliases.get(senderkey)
        receivers = original(signal, senderkey)
        if alias is None:
            return receivers
        seen = set(id(receiver) for receiver in receivers)
        for receiver in original(signal, alias):
            if id(receiver) not in seen:
                seen.add(id(receiver))
                receivers.append(receiver)
        return receivers

    return _live_receivers


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
        """Revert the records in reverse order; return the warnings they gave."""
        messages = []
        while len(self.records) > down_to:
            message = self.records.pop().revert()
            if message:
                messages.append(message)
        return messages

    def find(self, target, name):
        for record in reversed(self.records):
            if record.target is target and record.name == name:
                return record
        return None

    def __iter__(self):
        return iter(list(self.records))

    def __len__(self):
        return len(self.records)
