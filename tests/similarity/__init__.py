"""The calibration corpus of the copied-work detector (autograder/similarity.py): independent solutions
written in different styles, and planted copies of some of them (corpus.py)."""
