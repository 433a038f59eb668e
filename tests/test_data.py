"""tl_core.data: the built-in datasets and the few-shot splits."""
import pytest
import torch

from tl_core import data
from tl_core.data import ImageSet, few_shot_split, load, max_shots

S = 32  # small images keep the whole file fast; the resize path is the same for every size

CLASSES = {
    "digits": [str(k) for k in range(10)],
    "faces": ["face", "not face"],
    "textures": ["brick", "grass", "gravel"],
    "microscopy": ["retina", "cell", "tissue (IHC)"],
    "shapes": ["circle", "square", "triangle", "cross", "ring", "star"],
}
TOTAL = {"digits": 1797, "faces": 200, "textures": 192, "microscopy": 192, "shapes": 1800}
PER_CLASS = {"faces": 100, "textures": 64, "microscopy": 64, "shapes": 300}  # digits: 174..183
MAX_SHOTS = {"digits": 154, "faces": 80, "textures": 44, "microscopy": 44, "shapes": 280}


@pytest.fixture(scope="module")
def sets() -> dict[str, ImageSet]:
    return {name: load(name, S) for name in data.DATASETS}


def toy_set(per_class=(40, 35, 50)) -> ImageSet:
    """A synthetic set whose pixel [0, 0, 0] is the row number, so rows can be told apart."""
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(per_class)])
    images = torch.zeros(len(labels), 3, 4, 4)
    images[:, 0, 0, 0] = torch.arange(len(labels), dtype=torch.float32)
    return ImageSet("toy", images, labels, [f"c{k}" for k in range(len(per_class))])


def rows(ds: ImageSet) -> set[int]:
    return set(ds.images[:, 0, 0, 0].long().tolist())


# ---------------------------------------------------------------- datasets

def test_dataset_names():
    assert list(data.DATASETS) == ["digits", "faces", "textures", "microscopy", "shapes"]
    assert all(isinstance(d, str) and d and "\n" not in d for d in data.DATASETS.values())


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_dataset_contents(sets, name):
    ds = sets[name]
    assert ds.name == name and ds.classes == CLASSES[name]
    assert ds.images.shape == (TOTAL[name], 3, S, S) and ds.images.dtype == torch.float32
    assert ds.labels.shape == (TOTAL[name],) and ds.labels.dtype == torch.int64
    assert len(ds) == TOTAL[name]
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert ds.images.max() - ds.images.min() > 0.5  # real pixel values, not a flat image
    assert sorted(ds.labels.unique().tolist()) == list(range(len(CLASSES[name])))
    counts = ds.counts()
    assert list(counts) == CLASSES[name] and sum(counts.values()) == TOTAL[name]
    if name in PER_CLASS:
        assert set(counts.values()) == {PER_CLASS[name]}
    else:
        assert all(174 <= n <= 183 for n in counts.values())
    assert max_shots(ds) == MAX_SHOTS[name]


def test_grayscale_is_replicated_to_rgb(sets):
    for name in ("digits", "faces", "textures", "shapes"):
        x = sets[name].images
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    micro = sets["microscopy"]
    cell = micro.images[micro.labels == 1]
    assert torch.equal(cell[:, 0], cell[:, 2])
    retina = micro.images[micro.labels == 0]
    assert not torch.equal(retina[:, 0], retina[:, 1])  # the colour photos keep their colour


def test_faces_come_first_and_retina_crops_avoid_the_border(sets):
    assert sets["faces"].labels.tolist() == [0] * 100 + [1] * 100
    micro = sets["microscopy"]
    retina = micro.images[micro.labels == 0]
    dark = (retina.amax(dim=1) < 0.1).float().mean(dim=(1, 2))  # fraction of near-black pixels
    assert dark.max() <= 0.3


def test_shapes_are_visible(sets):
    x = sets["shapes"].images[:, 0]
    contrast = x.amax(dim=(1, 2)) - x.amin(dim=(1, 2))
    assert contrast.min() > 0.25


def test_other_sizes():
    ds = load("faces", 16)
    assert ds.images.shape == (200, 3, 16, 16)
    assert load("faces").images.shape == (200, 3, 64, 64)  # the default size


def test_second_load_is_equal_and_not_shared(sets):
    again = load("textures", S)
    assert torch.equal(again.images, sets["textures"].images)
    assert torch.equal(again.labels, sets["textures"].labels)
    assert again.images.data_ptr() != sets["textures"].images.data_ptr()
    again.images.zero_()  # a careless caller must not spoil the next load
    assert torch.equal(load("textures", S).images, sets["textures"].images)


def test_generation_is_deterministic(sets):
    data._raw.cache_clear()  # rebuild from scratch: crops and drawings come from default_rng(0)
    for name in ("textures", "shapes"):
        assert torch.equal(load(name, S).images, sets[name].images)


def test_class_subset_relabels(sets):
    ds = load("digits", S, classes=("8", "3"))
    assert ds.classes == ["8", "3"]
    assert ds.counts() == {"8": 174, "3": 183}
    full = sets["digits"]
    assert torch.equal(ds.images[ds.labels == 0], full.images[full.labels == 8])
    assert torch.equal(ds.images[ds.labels == 1], full.images[full.labels == 3])
    assert load("microscopy", S, classes=["cell", "retina"]).classes == ["cell", "retina"]


@pytest.mark.parametrize("kwargs, words", [
    (dict(name="mnist"), "unknown dataset 'mnist': choose one of digits, faces, textures, microscopy, shapes"),
    (dict(name="digits", size=8), "size must be a whole number of pixels between 16 and 512, got 8"),
    (dict(name="digits", size=513), "between 16 and 512, got 513"),
    (dict(name="digits", size=32.0), "between 16 and 512"),
    (dict(name="digits", classes=("3",)), "choose at least 2 classes of dataset 'digits'"),
    (dict(name="digits", classes=()), "choose at least 2 classes"),
    (dict(name="digits", classes=("3", "x")), "unknown class 'x' in dataset 'digits': choose from 0, 1, 2"),
    (dict(name="faces", classes=("face", "cat")), "choose from face, not face"),
    (dict(name="digits", classes=("3", "3")), "each class may be chosen once"),
    (dict(name="digits", classes="38"), "not one string"),
])
def test_load_errors(kwargs, words):
    with pytest.raises(ValueError) as err:
        load(**kwargs)
    assert words in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- ImageSet

def test_subset_and_counts():
    ds = toy_set()
    sub = ds.subset([0, 1, 95])
    assert rows(sub) == {0, 1, 95} and sub.classes == ds.classes and sub.name == "toy"
    assert sub.counts() == {"c0": 2, "c1": 0, "c2": 1}
    assert rows(ds.subset(torch.tensor([3, 4]))) == {3, 4}
    assert rows(ds.subset(ds.labels == 1)) == set(range(40, 75))
    assert len(ds.subset([])) == 0


# ---------------------------------------------------------------- few-shot splits

def test_val_is_fixed_and_balanced_train_is_nested():
    ds = toy_set()
    splits = {s: few_shot_split(ds, s, seed=3) for s in (1, 2, 5, 10, None)}
    val_rows = rows(splits[1][1])
    for shots, (train, val) in splits.items():
        assert rows(val) == val_rows and torch.equal(val.images, splits[1][1].images)
        assert val.counts() == {"c0": 20, "c1": 20, "c2": 20}
        assert not rows(train) & rows(val)
        expected = {"c0": 20, "c1": 15, "c2": 30} if shots is None else dict.fromkeys(ds.classes, shots)
        assert train.counts() == expected
        assert train.labels.tolist() == [ds.labels[r].item() for r in sorted(rows(train))]  # labels follow rows
    assert rows(splits[1][0]) < rows(splits[2][0]) < rows(splits[5][0]) < rows(splits[10][0])
    assert rows(splits[5][0]) | rows(splits[None][1]) | rows(splits[None][0]) == set(range(len(ds)))


def test_split_on_a_real_dataset(sets):
    ds = sets["faces"]
    for shots in data.SHOTS:
        train, val = few_shot_split(ds, shots)
        assert val.counts() == {"face": 20, "not face": 20}
        assert train.counts() == dict.fromkeys(ds.classes, 80 if shots is None else shots)
        assert train.images.shape[1:] == (3, S, S)
    assert torch.equal(few_shot_split(ds, 1)[1].images, few_shot_split(ds, 20)[1].images)


def test_split_seeds():
    ds = toy_set()
    a_train, a_val = few_shot_split(ds, 5, seed=0)
    b_train, b_val = few_shot_split(ds, 5, seed=0)
    c_train, c_val = few_shot_split(ds, 5, seed=1)
    assert rows(a_train) == rows(b_train) and rows(a_val) == rows(b_val)
    assert rows(a_train) != rows(c_train) and rows(a_val) != rows(c_val)


def test_val_per_class_and_max_shots():
    ds = toy_set()  # smallest class has 35 images
    assert max_shots(ds) == 15 and max_shots(ds, val_per_class=5) == 30
    train, val = few_shot_split(ds, 20, val_per_class=5)
    assert set(val.counts().values()) == {5} and set(train.counts().values()) == {20}
    assert offered_shots(ds) == [1, 2, 5, 10, None]


def offered_shots(ds):
    """The SHOTS choices a UI would offer for this set."""
    return [s for s in data.SHOTS if s is None or s <= max_shots(ds)]


@pytest.mark.parametrize("call, words", [
    (lambda ds: few_shot_split(ds, 16),
     "shots=16 is more than class 'c1' has left after the 20 validation images (15): choose at most 15"),
    (lambda ds: few_shot_split(ds, 0), "shots must be a whole number of at least 1"),
    (lambda ds: few_shot_split(ds, -1), "got -1"),
    (lambda ds: few_shot_split(ds, 2.5), "shots must be a whole number"),
    (lambda ds: few_shot_split(ds, 1, val_per_class=35),
     "class 'c1' has only 35 images: it needs at least 36 (35 for validation and 1 for training)"),
    (lambda ds: max_shots(ds, val_per_class=40), "class 'c0' has only 40 images: it needs at least 41"),
    (lambda ds: few_shot_split(ds, 1, val_per_class=0), "val_per_class must be a whole number of at least 1"),
])
def test_split_errors(call, words):
    with pytest.raises(ValueError) as err:
        call(toy_set())
    assert words in str(err.value) and "\n" not in str(err.value)


def test_split_error_on_faces(sets):
    with pytest.raises(ValueError, match=r"shots=81 is more than class 'face' has left after the 20 validation "
                                         r"images \(80\): choose at most 80"):
        few_shot_split(sets["faces"], 81)


def test_a_datasets_class_names_are_its_loaded_classes_without_loading_it():
    for name in data.DATASETS:
        assert data.class_names(name) == list(load(name, 16).classes)
    with pytest.raises(ValueError, match="unknown dataset"):
        data.class_names("imagenet")
