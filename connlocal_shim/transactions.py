"""Django 1.2's transaction state, kept with the wrapper that serves the alias.

Django 1.2 keeps transaction state in three module-level tables of ``django.db.transaction``
(``state``, ``savepoint_state`` and ``dirty``), each ``{thread: {alias: value}}``; Django 1.3
moved it onto each DatabaseWrapper. Under the backport an alias can be re-pointed to another
wrapper for one thread (``route_connections``), and then the alias's name no longer tells whose
transaction a query runs in: inside ``commit_on_success(using="other")``, a block routing
``default`` to the thread's ``other`` connection would have ``save()`` ask about ``default``'s
(empty) state and commit what the caller means to roll back.

:class:`TransactionTable` takes each table's place. The current thread's entry is a view whose
key is resolved through ``connections[alias]``, i.e. the wrapper the alias serves now:

- a thread's *own* wrapper (the one ``connections`` made for it, marked with :data:`OWN`) keeps
  its state where Django 1.2 keeps it, under (its thread, its alias): unrouted code sees exactly
  Django's tables, and a wrapper shared with another thread keeps its owner's transaction;
- any other wrapper (``separate_connection``, one made by hand) keeps its state on itself, as on
  Django 1.3, and it goes with the wrapper.

Other threads' entries, iteration and ``len()`` are the original table's, which stays the one
source of truth (uninstall puts it back in place, complete).
"""
from connlocal_shim.identity import keep_unreleased, thread_module, track

TABLES = ("state", "savepoint_state", "dirty")
# Set on the wrappers the handler makes for a thread (and the installing thread's moved ones).
OWN = "_connlocal_shim_own"
# On any other wrapper: {table name: its value}.
PER_WRAPPER = "_connlocal_shim_transaction"


def find_tables(transaction_module):
    """The three tables of Django 1.2's django.db.transaction, or None where transaction state
    lives in the wrappers (Django 1.3 and later)."""
    tables = dict((name, getattr(transaction_module, name, None)) for name in TABLES)
    if all(isinstance(table, dict) for table in tables.values()):
        return tables
    return None


class TransactionTable(object):
    """Stands for one ``{thread: {alias: value}}`` table of Django 1.2's transaction module."""

    def __init__(self, name, original, connections):
        self.name = name
        self.original = original
        self.connections = connections
        self._thread = thread_module()
        track(self)

    def forget_other_threads(self, keep):
        """In a forked child: the parent's other threads' transactions are not this process's
        (a new thread there with the same identity starts outside any, as on Django 1.4)."""
        for ident in list(self.original):
            if ident not in keep:
                keep_unreleased(self.original.pop(ident))

    def _is_current(self, ident):
        return ident == self._thread.get_ident()

    def __contains__(self, ident):
        return self._is_current(ident) or ident in self.original

    def __getitem__(self, ident):
        if self._is_current(ident):
            return AliasView(self)
        return self.original[ident]

    def get(self, ident, default=None):
        if self._is_current(ident):
            return AliasView(self)
        return self.original.get(ident, default)

    def setdefault(self, ident, default=None):
        if self._is_current(ident):
            return AliasView(self)
        return self.original.setdefault(ident, default)

    def __setitem__(self, ident, value):
        self.original[ident] = value

    def __delitem__(self, ident):
        del self.original[ident]

    def __iter__(self):
        return iter(list(self.original))

    def __len__(self):
        return len(self.original)

    def keys(self):
        return list(self.original.keys())

    def items(self):
        return list(self.original.items())

    def values(self):
        return list(self.original.values())

    def __repr__(self):
        return "<connlocal_shim TransactionTable %r: %r>" % (self.name, self.original)

    def locate(self, using, create):
        """(dict, key) where the current thread's value for alias ``using`` is kept."""
        connections = self.connections
        if using in connections.databases:
            state = vars(connections[using])
            if not state.get(OWN):
                per_wrapper = state.get(PER_WRAPPER)
                if per_wrapper is None:
                    per_wrapper = {}
                    if create:
                        state[PER_WRAPPER] = per_wrapper
                return per_wrapper, self.name
            owner, alias = state["_thread_ident"], state["alias"]
        else:  # not an alias of DATABASES: Django's own behaviour (it raises elsewhere)
            owner, alias = self._thread.get_ident(), using
        if create:
            return self.original.setdefault(owner, {}), alias
        return self.original.get(owner, {}), alias


class AliasView(object):
    """The current thread's ``{alias: value}`` of a TransactionTable (see its docstring)."""

    __slots__ = ("table",)

    def __init__(self, table):
        self.table = table

    def __contains__(self, using):
        inner, key = self.table.locate(using, False)
        return key in inner

    def __getitem__(self, using):
        inner, key = self.table.locate(using, False)
        return inner[key]

    def get(self, using, default=None):
        inner, key = self.table.locate(using, False)
        return inner.get(key, default)

    def __setitem__(self, using, value):
        inner, key = self.table.locate(using, True)
        inner[key] = value

    def setdefault(self, using, default=None):
        inner, key = self.table.locate(using, True)
        return inner.setdefault(key, default)

    def __delitem__(self, using):
        inner, key = self.table.locate(using, False)
        del inner[key]

    def pop(self, using, *default):
        inner, key = self.table.locate(using, False)
        return inner.pop(key, *default)

    def __repr__(self):
        ident = self.table._thread.get_ident()
        return "<connlocal_shim transaction %s of thread %s>" % (self.table.name, ident)


def managed_stack(state_table, wrapper):
    """The managed-transaction stack Django 1.2 keeps for ``wrapper`` (empty if none), read
    from the original ``state`` table or from the wrapper itself, as TransactionTable does."""
    state = vars(wrapper)
    if state.get(OWN):
        return state_table.get(state["_thread_ident"], {}).get(state["alias"]) or []
    return (state.get(PER_WRAPPER) or {}).get("state") or []
