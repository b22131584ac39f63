"""Real Outlook ``.msg`` files for tests, written here because no permissively licensed writer
exists (extract-msg, which has one, is GPL). A .msg is an OLE compound file ([MS-CFB]) holding the
message's MAPI properties as streams ([MS-OXMSG]): ``__substg1.0_IIIITTTT`` for strings and
binaries (property id, type), ``__properties_version1.0`` for fixed-size values such as dates, and
one ``__attach_version1.0_#N`` storage per attachment. This module writes version 3 compound
files (512-byte sectors, a mini stream for streams under 4,096 bytes) as Outlook does; olefile
reads them back like an Outlook file."""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Sequence

ENDOFCHAIN = 0xFFFFFFFE
FREESECT = 0xFFFFFFFF
FATSECT = 0xFFFFFFFD
NOSTREAM = 0xFFFFFFFF
MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

Tree = dict[str, "bytes | Tree"]


def compound_file(tree: Tree) -> bytes:
    """An OLE compound file holding ``tree`` (name -> stream bytes, or a sub-tree: a storage)."""
    entries: list[dict[str, object]] = [{"name": "Root Entry", "type": 5, "tree": tree}]
    index = 0
    while index < len(entries):  # breadth first: every storage's children get ids
        entry = entries[index]
        index += 1
        if entry["type"] == 2:
            continue
        sub = entry["tree"]
        assert isinstance(sub, dict)
        names = sorted(sub, key=lambda n: (len(n), n.upper()))
        ids = []
        for name in names:
            value = sub[name]
            ids.append(len(entries))
            if isinstance(value, dict):
                entries.append({"name": name, "type": 1, "tree": value})
            else:
                entries.append({"name": name, "type": 2, "data": value})
        entry["child"] = ids[0] if ids else NOSTREAM
        for here, after in zip(ids, [*ids[1:], NOSTREAM], strict=True):
            entries[here]["right"] = after

    mini = bytearray()
    minifat: list[int] = []
    big: list[tuple[dict[str, object], bytes]] = []
    for entry in entries:
        if entry["type"] != 2:
            continue
        data = entry["data"]
        assert isinstance(data, bytes) and data
        if len(data) < 4096:
            first = len(minifat)
            count = -(-len(data) // 64)
            minifat.extend(range(first + 1, first + count))
            minifat.append(ENDOFCHAIN)
            entry["start"] = first
            mini += data + b"\0" * (count * 64 - len(data))
        else:
            big.append((entry, data))

    def sectors(blob: bytes) -> list[bytes]:
        blob += b"\0" * (-len(blob) % 512)
        return [blob[i : i + 512] for i in range(0, len(blob), 512)]

    data_sectors: list[bytes] = []
    fat: list[int] = []

    def place(blob: bytes) -> int:
        chunks = sectors(blob)
        first = len(data_sectors)
        data_sectors.extend(chunks)
        fat.extend(range(first + 1, first + len(chunks)))
        fat.append(ENDOFCHAIN)
        return first

    dir_blob = b"".join(_dir_entry(e) for e in entries) + _dir_entry(None) * (-len(entries) % 4)
    # the directory is placed last in the entry data, so the rest is laid out first
    minifat_start = (
        place(b"".join(struct.pack("<I", v) for v in minifat)) if minifat else (ENDOFCHAIN)
    )
    minifat_count = -(-len(minifat) * 4 // 512) if minifat else 0
    if mini:
        entries[0]["start"] = place(bytes(mini))
        entries[0]["size"] = len(mini)
    else:
        entries[0]["start"] = ENDOFCHAIN
        entries[0]["size"] = 0
    for entry, data in big:
        entry["start"] = place(data)
    for entry in entries:
        if entry["type"] == 2:
            entry["size"] = len(entry["data"])  # type: ignore[arg-type]
    dir_blob = b"".join(_dir_entry(e) for e in entries) + _dir_entry(None) * (-len(entries) % 4)
    dir_start = place(dir_blob)

    n_fat = 1
    while n_fat * 128 < len(data_sectors) + n_fat:
        n_fat += 1
    fat_first = len(data_sectors)
    fat.extend([FATSECT] * n_fat)
    fat.extend([FREESECT] * (n_fat * 128 - len(fat)))
    fat_blob = b"".join(struct.pack("<I", v) for v in fat)
    difat = list(range(fat_first, fat_first + n_fat)) + [FREESECT] * (109 - n_fat)
    header = (
        MAGIC
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        + struct.pack(
            "<IIIIIIIII",
            0,
            n_fat,
            dir_start,
            0,
            4096,
            minifat_start,
            minifat_count,
            ENDOFCHAIN,
            0,
        )
        + b"".join(struct.pack("<I", v) for v in difat)
    )
    assert len(header) == 512
    return header + b"".join(data_sectors) + fat_blob


def _dir_entry(entry: dict[str, object] | None) -> bytes:
    if entry is None:
        return (
            b"\0" * 64
            + struct.pack("<HBBIII", 0, 0, 0, NOSTREAM, NOSTREAM, NOSTREAM)
            + (b"\0" * 16 + b"\0" * 4 + b"\0" * 16 + struct.pack("<IQ", 0, 0))
        )
    name = str(entry["name"]).encode("utf-16-le") + b"\0\0"
    return (
        name.ljust(64, b"\0")
        + struct.pack(
            "<HBBIII",
            len(name),
            entry["type"],
            1,
            entry.get("left", NOSTREAM),
            entry.get("right", NOSTREAM),
            entry.get("child", NOSTREAM),
        )
        + b"\0" * 16
        + b"\0" * 4
        + b"\0" * 16
        + struct.pack("<IQ", entry.get("start", ENDOFCHAIN), entry.get("size", 0))
    )


# -- MAPI properties ------------------------------------------------------------------------------


def _string(prop: int, text: str) -> tuple[str, bytes]:
    return f"__substg1.0_{prop:04X}001F", text.encode("utf-16-le")


def _binary(prop: int, data: bytes) -> tuple[str, bytes]:
    return f"__substg1.0_{prop:04X}0102", data


def _filetime(when: dt.datetime) -> int:
    return int((when - dt.datetime(1601, 1, 1, tzinfo=dt.UTC)).total_seconds() * 10_000_000)


def _properties(header: bytes, fixed: Sequence[tuple[int, int, int]]) -> bytes:
    """``fixed``: (property id, type, 8-byte value as int)."""
    rows = b"".join(struct.pack("<HHIQ", ptype, pid, 6, value) for pid, ptype, value in fixed)
    return header + rows


def outlook_message(
    *,
    subject: str,
    sender_name: str,
    sender_email: str,
    to: str,
    sent: dt.datetime,
    body: str | None = None,
    html: str | None = None,
    attachments: Sequence[tuple[str, bytes]] = (),
    message_class: str = "IPM.Note",
) -> bytes:
    tree: Tree = dict(
        [
            _string(0x001A, message_class),
            _string(0x0037, subject),
            _string(0x0C1A, sender_name),
            _string(0x0C1F, sender_email),
            _string(0x5D01, sender_email),
            _string(0x0E04, to),
        ]
    )
    if body is not None:
        tree.update([_string(0x1000, body)])
    if html is not None:
        tree.update([_binary(0x1013, html.encode("utf-8"))])
    fixed = [(0x0039, 0x0040, _filetime(sent)), (0x0E06, 0x0040, _filetime(sent))]
    header = struct.pack("<8xIIII8x", 1, len(attachments), 1, len(attachments))
    tree["__properties_version1.0"] = _properties(header, fixed)
    recipient: Tree = dict([_string(0x3001, to), _string(0x39FE, to)])
    recipient["__properties_version1.0"] = _properties(b"\0" * 8, [(0x0C15, 0x0003, 1)])
    tree["__recip_version1.0_#00000000"] = recipient
    for number, (name, data) in enumerate(attachments):
        storage: Tree = dict(
            [_string(0x3707, name), _string(0x3704, name[:8]), _binary(0x3701, data)]
        )
        storage["__properties_version1.0"] = _properties(b"\0" * 8, [(0x3705, 0x0003, 1)])
        tree[f"__attach_version1.0_#{number:08X}"] = storage
    tree["__nameid_version1.0"] = {"__substg1.0_00020102": b"\0" * 16}
    return compound_file(tree)
