import numpy as np

from schema.taxonomy import STOP, Taxonomy, ancestors

PATHS = (
    [["Apparel", "Bottomwear", "Shorts"]] * 6
    + [["Apparel", "Loungewear", "Shorts"]] * 5
    + [["Apparel", "Topwear", "Tshirts"]] * 7
    + [["Apparel", "Topwear", "Capes"]] * 2  # rare: merged into Apparel > Topwear
    + [["Footwear", "Shoes"]] * 5  # a path that ends at level 2
    + [["Oddity"]] * 1  # rare top level: unplaced
)


def test_names_repeat_across_parents_and_rare_nodes_merge():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    level3 = tax.levels[2].classes
    assert "Apparel > Bottomwear > Shorts" in level3 and "Apparel > Loungewear > Shorts" in level3
    assert "Apparel > Topwear > Capes" not in level3
    assert tax.unplaced == 1
    assert tax.levels[0].classes == ["Apparel", "Footwear"]
    assert level3[0] == STOP and tax.levels[1].classes[0] == STOP


def test_label_ids_resolve_merged_and_short_paths():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    idx = {k: tax.index(k) for k in (1, 2, 3)}
    assert tax.label_ids(["Apparel", "Topwear", "Tshirts"]) == [
        idx[1]["Apparel"], idx[2]["Apparel > Topwear"], idx[3]["Apparel > Topwear > Tshirts"]]
    # merged leaf: stops at its parent
    assert tax.label_ids(["Apparel", "Topwear", "Capes"]) == [idx[1]["Apparel"], idx[2]["Apparel > Topwear"], 0]
    assert tax.label_ids(["Footwear", "Shoes"]) == [idx[1]["Footwear"], idx[2]["Footwear > Shoes"], 0]
    assert tax.label_ids(["Unknown", "X"]) == [-1, -1, -1]


def test_child_mask_allows_only_children_and_stop_where_products_end():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    mask = tax.child_mask(3)
    l2 = tax.index(2)
    l3 = tax.index(3)
    topwear = l2["Apparel > Topwear"]
    assert mask[topwear, l3["Apparel > Topwear > Tshirts"]] == 1
    assert mask[topwear, l3["Apparel > Bottomwear > Shorts"]] == 0
    assert mask[topwear, 0] == 1  # the merged Capes products end at Topwear
    assert mask[l2["Apparel > Bottomwear"], 0] == 0
    assert mask[l2["Footwear > Shoes"], 0] == 1  # a leaf at level 2 must stop
    assert mask[0].tolist() == [1] + [0] * (mask.shape[1] - 1)  # stopped stays stopped
    assert set(tax.leaves()) >= {"Footwear > Shoes", "Apparel > Topwear", "Apparel > Topwear > Tshirts"}


def test_roundtrip(tmp_path):
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    tax.save(tmp_path)
    again = Taxonomy.load(tmp_path)
    assert again.to_dict() == tax.to_dict()
    assert np.array_equal(again.child_mask(2), tax.child_mask(2))


def test_ancestors():
    assert ancestors("A > B > C") == ["A", "A > B", "A > B > C"]
    assert ancestors("") == []


def test_unseen_child_is_masked_not_stop():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    bottomwear = tax.index(2)["Apparel > Bottomwear"]
    # every training product under Bottomwear goes deeper: an unseen leaf cannot be STOP
    assert tax.label_ids(["Apparel", "Bottomwear", "Skirts"]) == [tax.index(1)["Apparel"], bottomwear, -1]


def test_nodes_are_the_kept_paths_without_stop():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    assert tax.nodes() == {
        "Apparel", "Footwear", "Apparel > Bottomwear", "Apparel > Loungewear", "Apparel > Topwear",
        "Footwear > Shoes", "Apparel > Bottomwear > Shorts", "Apparel > Loungewear > Shorts",
        "Apparel > Topwear > Tshirts",
    }
