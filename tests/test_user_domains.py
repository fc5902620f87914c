"""Uploaded domains (lepton.data.user_domains): validation of untrusted uploads and persistence."""
import io
import json
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from lepton.data import DOMAINS, DataError, load_domain
from lepton.data import user_domains as ud
from lepton.data.user_domains import UploadError


def png_bytes(seed: int, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random((size, size)) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def make_zip(entries, wrap: str = "") -> bytes:
    """entries: {name: bytes} or (ZipInfo, bytes) pairs."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        items = entries.items() if isinstance(entries, dict) else entries
        for name, data in items:
            zf.writestr(name if isinstance(name, zipfile.ZipInfo) else wrap + name, data)
    return buf.getvalue()


def image_zip(classes=("0", "1"), n=6, wrap="root/") -> bytes:
    return make_zip({f"{c}/{i}.png": png_bytes(10 * j + i) for j, c in enumerate(classes) for i in range(n)}, wrap)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("LEPTON_UPLOAD_LIMIT_MB", raising=False)
    h = tmp_path / "home"
    yield h
    for name in list(ud.list_user_domains(h)):
        ud.remove_user_domain(name, h)


def test_image_zip_becomes_a_domain_and_is_remembered(home):
    ud.add_user_domain("my-digits", "data.zip", image_zip(), home=home)
    d = load_domain("my-digits")
    assert d.modality == "image" and d.class_names == ["0", "1"] and d.sizes()["train"] + d.sizes()["test"] == 12
    reg = json.loads((home / "domains" / "registry.json").read_text())
    assert reg["my-digits"]["kind"] == "image folder" and reg["my-digits"]["filename"] == "data.zip"
    # a fresh process (a server restart) finds it again through the registry
    code = ("import sys; from lepton.data import user_domains as u, load_domain; "
            f"assert u.load_user_domains({str(home)!r}) == ['my-digits']; "
            "print(load_domain('my-digits').n_classes)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"


def test_zip_without_a_wrapping_folder(home):
    ud.add_user_domain("flat", "flat.zip", image_zip(wrap=""), home=home)
    assert load_domain("flat").n_classes == 2


def test_csv_table(home):
    rng = np.random.default_rng(0)
    rows = ["a,b,c,label"] + [f"{x[0]:.3f},{x[1]:.3f},{x[2]:.3f},{'pos' if i % 2 else 'neg'}"
                              for i, x in enumerate(rng.random((40, 3)))]
    ud.add_user_domain("tab", "t.csv", "\n".join(rows).encode(), home=home)
    d = load_domain("tab")
    assert d.modality == "features" and d.input_shape == (3,) and d.class_names == ["neg", "pos"]


def test_npz_with_pickled_objects_is_refused(home):
    buf = io.BytesIO()
    np.savez(buf, X=np.array([{"evil": 1}] * 10, dtype=object), y=np.arange(10) % 2)
    with pytest.raises(Exception, match="pickle"):
        ud.add_user_domain("obj", "x.npz", buf.getvalue(), home=home)
    assert "obj" not in DOMAINS and not (home / "domains" / "obj").exists()


@pytest.mark.parametrize("name, why", [
    ("/etc/passwd", "absolute path"),
    ("C:/windows/x.png", "absolute path"),
    ("root/../../escape.png", "'..'"),
    ("root/0/../../../escape.png", "'..'"),
])
def test_zip_with_escaping_paths_is_refused(home, name, why):
    data = make_zip({name: png_bytes(0), "root/0/a.png": png_bytes(1)})
    with pytest.raises(UploadError, match=why):
        ud.add_user_domain("evil", "evil.zip", data, home=home)
    assert not list((home / "domains").glob("*evil*"))
    assert not (home.parent / "escape.png").exists()


def test_zip_with_a_symlink_is_refused(home):
    info = zipfile.ZipInfo("root/0/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = make_zip([(info, "/etc/passwd"), ("root/0/a.png", png_bytes(1))])
    with pytest.raises(UploadError, match="symbolic link"):
        ud.add_user_domain("linky", "l.zip", data, home=home)


def test_upload_over_the_size_limit_is_refused(home, monkeypatch):
    monkeypatch.setenv("LEPTON_UPLOAD_LIMIT_MB", "0.001")  # 1,000 bytes
    with pytest.raises(UploadError, match="over the 0.0 MB limit|LEPTON_UPLOAD_LIMIT_MB"):
        ud.add_user_domain("big", "big.csv", b"label,x\n" + b"1,2\n" * 1000, home=home)


def test_zip_bomb_is_refused_before_extraction(home, monkeypatch):
    monkeypatch.setenv("LEPTON_UPLOAD_LIMIT_MB", "1")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("root/0/zeros.png", b"\0" * 5_000_000)  # compresses to a few KB
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(UploadError, match="uncompressed"):
        ud.add_user_domain("bomb", "bomb.zip", buf.getvalue(), home=home)


def test_bad_limit_setting_is_explained(monkeypatch):
    monkeypatch.setenv("LEPTON_UPLOAD_LIMIT_MB", "lots")
    with pytest.raises(UploadError, match="LEPTON_UPLOAD_LIMIT_MB"):
        ud.upload_limit_bytes()


@pytest.mark.parametrize("name, why", [
    ("", "give the new domain a name"),
    ("a b", "no spaces"),
    ("x:rotate=3", "no spaces"),
    ("../up", "no spaces"),
    ("digits", "already a built-in domain"),
])
def test_bad_names_are_refused(home, name, why):
    with pytest.raises(UploadError, match=why):
        ud.add_user_domain(name, "d.zip", image_zip(), home=home)


def test_unknown_format_and_corrupt_zip(home):
    with pytest.raises(UploadError, match="upload a .zip"):
        ud.add_user_domain("exe", "run.py", b"print('hi')", home=home)
    with pytest.raises(UploadError, match="not a readable zip"):
        ud.add_user_domain("junk", "junk.zip", b"not a zip at all", home=home)


def test_bad_data_leaves_nothing_behind(home):
    data = make_zip({"root/only/a.png": png_bytes(0)})  # one class: not a domain
    with pytest.raises(Exception, match="class"):
        ud.add_user_domain("one-class", "o.zip", data, home=home)
    assert "one-class" not in DOMAINS and "one-class" not in ud.list_user_domains(home)
    assert [p.name for p in (home / "domains").iterdir()] == []


def test_replace_and_remove(home):
    ud.add_user_domain("mine", "a.zip", image_zip(("0", "1")), home=home)
    with pytest.raises(UploadError, match="already exists"):
        ud.add_user_domain("mine", "b.zip", image_zip(("0", "1", "2")), home=home)
    ud.add_user_domain("mine", "b.zip", image_zip(("0", "1", "2")), home=home, replace=True)
    assert load_domain("mine").n_classes == 3
    ud.remove_user_domain("mine", home)
    assert "mine" not in DOMAINS and not (home / "domains" / "mine").exists()
    with pytest.raises(UploadError, match="not an uploaded domain"):
        ud.remove_user_domain("mine", home)


def test_missing_files_are_skipped_with_a_warning(home):
    ud.add_user_domain("gone", "g.zip", image_zip(), home=home)
    import shutil
    shutil.rmtree(home / "domains" / "gone")
    with pytest.warns(UserWarning, match="gone"):
        assert "gone" not in ud.load_user_domains(home)


def test_an_upload_never_silently_replaces_a_domain_and_messages_name_the_file(tmp_path):
    home = tmp_path / "home"
    rows = ["label,a,b"] + [f"{i % 2},{i},{i + 1}" for i in range(1, 21)]
    ud.add_user_domain("tab", "My Table (v1).csv", "\n".join(rows).encode(), home=home)
    with pytest.raises(ud.UploadError, match="already exists.*My Table \\(v1\\).csv.*pick another name or"):
        ud.add_user_domain("tab", "other.csv", "\n".join(rows).encode(), home=home)
    ud.add_user_domain("tab", "other.csv", "\n".join(rows).encode(), home=home, replace=True)
    from lepton.data.catalog import DOMAINS
    assert "other.csv" in DOMAINS.get("tab").description
    with pytest.raises(DataError, match="^empty.csv is empty"):
        ud.add_user_domain("e", "empty.csv", b"", home=home)


def test_rename_moves_an_upload_and_refuses_a_taken_name(tmp_path):
    from lepton.data import load_domain
    from lepton.data.user_domains import UploadError, add_user_domain, list_user_domains, rename_user_domain
    csv = "label,a,b\n" + "\n".join(f"{i % 2},{i + 1},{i * 2 + 1}" for i in range(40))
    add_user_domain("tab-a", "t.csv", csv.encode(), home=tmp_path)
    add_user_domain("tab-c", "t.csv", csv.encode(), home=tmp_path)
    with pytest.raises(UploadError, match="already exists"):
        rename_user_domain("tab-a", "tab-c", home=tmp_path)
    with pytest.raises(UploadError, match="is not an uploaded domain"):
        rename_user_domain("nope", "tab-b", home=tmp_path)
    rename_user_domain("tab-a", "tab-b", home=tmp_path)
    assert set(list_user_domains(tmp_path)) == {"tab-b", "tab-c"}
    assert not (tmp_path / "domains" / "tab-a").exists() and (tmp_path / "domains" / "tab-b").is_dir()
    assert len(load_domain("tab-b").y_train) + len(load_domain("tab-b").y_test) == 40
    with pytest.raises(Exception, match="tab-a"):
        load_domain("tab-a")


def test_a_run_records_the_uploads_it_used_and_a_replacement_is_not_silent(tmp_path, monkeypatch):
    from lepton.config import RunConfig
    from lepton.data.user_domains import add_user_domain, data_versions, stale_domains
    from lepton.training import fit
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path))
    rows = lambda k: "label,a,b\n" + "\n".join(f"{i % 2},{i % 7 + k},{(i * 3) % 5 + 1}" for i in range(60))  # noqa: E731
    add_user_domain("up-src", "s.csv", rows(1).encode(), home=tmp_path)
    add_user_domain("up-tgt", "t.csv", rows(2).encode(), home=tmp_path)
    res = fit(RunConfig("up-src", "up-tgt", steps=5))
    versions = res.harmonisation["data_versions"]
    assert set(versions) == {"up-src", "up-tgt"} and versions["up-tgt"] == data_versions(["up-tgt"], tmp_path)["up-tgt"]
    assert stale_domains(versions, tmp_path) == {}
    with pytest.raises(UploadError, match="already exists"):  # a taken name is refused ...
        add_user_domain("up-tgt", "t.csv", rows(3).encode(), home=tmp_path)
    add_user_domain("up-tgt", "t.csv", rows(3).encode(), home=tmp_path, replace=True)  # ... unless replaced on purpose
    assert stale_domains(versions, tmp_path) == {"up-tgt": "replaced"}  # and the stored run says so
    ud.remove_user_domain("up-src", home=tmp_path)
    assert stale_domains(versions, tmp_path) == {"up-tgt": "replaced", "up-src": "gone"}
    assert "data_versions" not in fit(RunConfig("digits", "digits-rotated", steps=2)).harmonisation  # built-ins
