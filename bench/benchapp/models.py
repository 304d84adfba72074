"""The one model of the benchmark: a small table the ORM figures and the view query."""
from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=50)
    value = models.IntegerField()

    class Meta:
        app_label = "benchapp"
