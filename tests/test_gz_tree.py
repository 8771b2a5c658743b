"""The Galaxy Zoo 2 decision tree, derived from the bundled CSV."""

import numpy as np

from astrocat.kernels.gz_tree import galaxy_zoo2


def test_tree_matches_science_reference():
    tree = galaxy_zoo2()
    assert len(tree.answers) == 37
    spans = {q.number: (q.start, q.stop) for q in tree.questions}
    # Zero-based output indices from SCIENCE.md section 1.
    assert spans == {1: (0, 3), 2: (3, 5), 3: (5, 7), 4: (7, 9), 5: (9, 13), 6: (13, 15),
                     7: (15, 18), 8: (18, 25), 9: (25, 28), 10: (28, 31), 11: (31, 37)}
    parent = {q.number: q.parent_index for q in tree.questions}
    assert parent[1] is None and parent[6] is None
    assert parent[2] == tree.index("Class1.2") and parent[7] == tree.index("Class1.1")
    assert parent[3] == parent[4] == parent[5] == tree.index("Class2.2")
    assert parent[8] == tree.index("Class6.1") and parent[9] == tree.index("Class2.1")
    assert parent[10] == parent[11] == tree.index("Class4.1")
    assert tree.kaggle_columns[0] == "Class1.1" and tree.kaggle_columns[-1] == "Class11.6"


def test_normalise_obeys_every_sum():
    tree = galaxy_zoo2()
    raw = np.random.default_rng(1).random((200, 37))
    out = tree.normalise(raw)
    assert tree.violations(out).max() < 1e-5
    # Q1 sums to 1; Q2 to Class1.2 (hand check of one row).
    assert abs(out[0, 0:3].sum() - 1) < 1e-6
    assert abs(out[0, 3:5].sum() - out[0, 1]) < 1e-6
    # A violating input is detected.
    bad = out.copy()
    bad[:, 3] += 0.2
    assert tree.violations(bad).min() > 0.19
