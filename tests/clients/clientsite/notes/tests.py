"""What South's test runner runs: the test database was built by migrating (SOUTH_TESTS_MIGRATE
and no syncdb for migrated apps), so the notes table is there only if the migrations ran."""
from django.test import TestCase

from notes.models import Note


class NoteTest(TestCase):
    def test_a_note_is_saved_and_read_back(self):
        Note.objects.create(text="migrated")
        self.assertEqual([note.text for note in Note.objects.all()], ["migrated"])
