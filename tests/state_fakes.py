"""State cells and timers as a runner hands them to a stateful ``DoFn``'s methods,
for tests that call ``process`` and the timer callbacks directly."""


class Bag:
    """A bag state and a timer."""

    def __init__(self, *entries):
        self.entries, self.timer = list(entries), None

    def read(self):
        return list(self.entries)

    def add(self, value):
        self.entries.append(value)

    def clear(self):
        self.entries = []

    def set(self, timestamp):
        self.timer = timestamp


class Cell:
    """A read-modify-write state cell and a timer."""

    def __init__(self, value=None):
        self.value, self.timer = value, None

    def read(self):
        return self.value

    def write(self, value):
        self.value = value

    def set(self, timestamp):
        self.timer = timestamp
