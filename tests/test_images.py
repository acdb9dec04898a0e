"""Pictures from files: a phone photo is published upright, small and without its location."""

from __future__ import annotations

import io

import pytest
from PIL import Image, PngImagePlugin

from mailer.newsletter.images import MAX_BYTES, ImageError, process_image
from tests.archive_helpers import archived_campaign, phone_photo
from tests.newsletter_helpers import copy_campaign


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_a_phone_photo_is_turned_upright_scaled_and_stripped_of_exif():
    raw = phone_photo(4000, 3000, orientation=6)
    assert _open(raw).getexif().get_ifd(0x8825)  # the input really carries GPS data

    stored = process_image(raw)

    picture = _open(stored.data)
    assert picture.format == "JPEG"
    # stored 4000×3000 sideways; upright it is 3000×4000, scaled to 1200 wide
    assert (stored.width, stored.height) == picture.size == (1200, 1600)
    assert picture.getexif() == {} and "exif" not in picture.info
    assert b"Exif" not in stored.data and b"PhoneMaker" not in stored.data
    # upright: the stored top-left (blue) quarter is now at the top right
    r, g, b = picture.getpixel((1100, 100))
    assert b > 150 and r < 100
    r, g, b = picture.getpixel((100, 100))
    assert r > 120 and b < 100
    assert stored.name.endswith(".jpg") and len(stored.name) == 16 + 4
    assert process_image(raw).name == stored.name  # the same picture, the same name


def test_png_stays_png_without_its_text_chunks():
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Maija Meikäläinen")
    out = io.BytesIO()
    Image.new("RGBA", (300, 200), (10, 200, 10, 128)).save(out, "PNG", pnginfo=info)

    stored = process_image(out.getvalue())

    assert stored.name.endswith(".png") and (stored.width, stored.height) == (300, 200)
    assert b"Author" not in stored.data and _open(stored.data).mode == "RGBA"


@pytest.mark.parametrize(("mode", "ext"), [("RGB", ".jpg"), ("RGBA", ".png")])
def test_webp_becomes_jpeg_or_png_because_outlook_shows_no_webp(mode, ext):
    out = io.BytesIO()
    Image.new(mode, (2400, 1200), (30, 60, 90, 200)[: len(mode)]).save(out, "WEBP")

    stored = process_image(out.getvalue())

    assert stored.name.endswith(ext) and (stored.width, stored.height) == (1200, 600)


def test_an_animated_gif_stays_an_animated_gif():
    frames = [Image.new("RGB", (1600, 400), c) for c in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)

    stored = process_image(out.getvalue())

    picture = _open(stored.data)
    assert picture.format == "GIF" and picture.n_frames == 3 and picture.size == (1200, 300)


def test_a_decompression_bomb_is_refused():
    out = io.BytesIO()
    Image.new("1", (12000, 12000)).save(out, "PNG")  # 144 million pixels in a few kB
    assert len(out.getvalue()) < 100_000
    with pytest.raises(ImageError, match="million"):
        process_image(out.getvalue())


def _item_with_image(workspace, image_line: str):
    campaign = copy_campaign(workspace.path)
    item = campaign.parent / "news" / "strategia.fi.md"
    old = 'image = "https://uutiset.arcticsmartness.eu/kuvat/klusterit-2018.jpg"'
    item.write_text(item.read_text(encoding="utf-8").replace(old, image_line), encoding="utf-8")
    return campaign, item


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda path: path.write_text("not a picture\n"), "not a picture"),
        (lambda path: None, "no such file"),
        (lambda path: path.write_bytes(b"\xff\xd8\xff" + b"\0" * (MAX_BYTES + 1)), "10 MB"),
        (lambda path: path.write_bytes(phone_photo(800, 600)[:3000]), "cannot be used"),
    ],
    ids=["text-named-jpg", "missing", "over-10-mb", "truncated"],
)
def test_a_bad_picture_is_exit_2_naming_the_item(workspace, make, words):
    campaign, item = _item_with_image(workspace, 'image = "kuva.jpg"')
    make(item.parent / "kuva.jpg")
    for command in (
        ("render", str(campaign), "--out", str(workspace.path / "out")),
        ("campaign", "create", str(campaign)),
    ):
        res = workspace.cli(*command)
        assert res.exit_code == 2, res.stderr
        line = res.stderr.strip()
        assert line.count("\n") == 0 and f"{item}:6:" in line and words in line, line
    with workspace.store() as store:
        assert store.conn.execute("SELECT count(*) FROM campaigns").fetchone()[0] == 0
        assert store.conn.execute("SELECT count(*) FROM images").fetchone()[0] == 0


def test_an_image_url_of_another_scheme_is_refused(workspace):
    campaign, item = _item_with_image(workspace, 'image = "ftp://example.org/a.jpg"')
    res = workspace.cli("campaign", "create", str(campaign))
    assert res.exit_code == 2 and "file beside the item or an http(s) URL" in res.stderr


def test_campaign_create_stores_the_picture_once_and_render_previews_it_locally(workspace):
    workspace.ensure_lists("cluster:arctic-power")
    campaign = archived_campaign(workspace.path)
    en = campaign.parent / "news" / "strategy.en.md"
    text = en.read_text(encoding="utf-8")
    en.write_text(
        text.replace("+++\n", '+++\nimage = "kuva.jpg"\nimage_alt = "Cluster actors"\n', 1)
        if "image =" not in text
        else text,
        encoding="utf-8",
    )
    res = workspace.cli("render", str(campaign), "--out", str(workspace.path / "preview"))
    assert res.exit_code == 0, res.stderr
    (local,) = (workspace.path / "preview" / "m").iterdir()
    html = (workspace.path / "preview" / "index.fi.html").read_text(encoding="utf-8")
    assert f'src="m/{local.name}"' in html  # the preview shows the local copy
    assert 'width="536" height="715"' in html  # 1200×1600 shown 536 wide
    sample = (workspace.path / "preview" / "sample.fi.eml").read_bytes()
    assert f"https://uutiset.arcticsmartness.eu/m/{local.name}".encode() in sample.replace(
        b"=\r\n", b""
    )

    for _ in range(2):  # created again: still one stored copy
        assert workspace.cli("campaign", "create", str(campaign)).exit_code == 0
    with workspace.store() as store:
        rows = store.conn.execute("SELECT name, data, width, height FROM images").fetchall()
    assert [(r[0], r[2], r[3]) for r in rows] == [(local.name, 1200, 1600)]
    assert bytes(rows[0][1]) == local.read_bytes()


@pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
def test_comments_are_stripped_too(fmt):
    out = io.BytesIO()
    mode = "P" if fmt == "GIF" else "RGB"
    Image.new(mode, (50, 40)).save(out, fmt, comment=b"Kuvattu: Maija, Rovaniemi")
    assert b"Maija" in out.getvalue()
    assert b"Maija" not in process_image(out.getvalue()).data


def test_a_transparent_palette_png_keeps_its_transparency():
    picture = Image.new("P", (50, 40), 1)
    picture.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255])
    picture.putpixel((0, 0), 2)
    out = io.BytesIO()
    picture.save(out, "PNG", transparency=1)  # red is transparent, the blue pixel is not

    shown = _open(process_image(out.getvalue()).data).convert("RGBA")

    assert shown.getpixel((1, 1))[3] == 0 and shown.getpixel((0, 0)) == (0, 0, 255, 255)
