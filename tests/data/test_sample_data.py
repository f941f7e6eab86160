"""The built-in sample data: real labelled images with no download."""

from kerasdl.data.load import load_data
from kerasdl.data.scan import sample_data_dir


def test_sample_is_200_faces_and_non_faces_written_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASDL_HOME", str(tmp_path))
    folder = sample_data_dir()
    assert sorted(p.name for p in folder.iterdir()) == ["face", "non_face"]
    assert len(list((folder / "face").iterdir())) == 100
    assert sample_data_dir() == folder
    data = load_data("sample", image_size=32, batch_size=8, seed=0)
    counts = data.class_counts()
    assert counts["train"] == {"face": 80, "non_face": 80}
    assert counts["val"] == {"face": 20, "non_face": 20}
    images, labels = next(iter(data.train))
    assert images.shape == (8, 32, 32, 3) and images.dtype.name == "float32"
    assert float(images.numpy().max()) <= 255.0
