"""Two small projects of other tasks (a digits classifier, a next-token model) that use Trainline as a library.

Each is a package a user would keep in their own repository; the tests copy one into a temporary git repo and drive
it through `trainline init`, `trainline check`, `dvc repro` and `dvc exp run`, with no engine code edited.
"""
