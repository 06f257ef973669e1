"""The Protocol Buffers binary wire format, read straight from a buffer (no protobuf package).

A message is a sequence of fields; each is a key followed by a value. The key is a varint
``field_number << 3 | wire_type`` and the wire type says how long the value is:

==========  =======  ==================================================================
wire type   name     value
==========  =======  ==================================================================
0           VARINT   base-128 integer, little-endian groups of 7 bits, the high bit of
                     each byte set while more bytes follow (at most 10 bytes)
1           I64      8 bytes, little-endian (fixed64, sfixed64, double)
2           LEN      a varint byte count, then that many bytes (string, bytes, nested
                     message, packed repeated scalars)
5           I32      4 bytes, little-endian (fixed32, sfixed32, float)
3, 4        groups   deprecated proto2 groups; Caffe and ONNX use none, so they are refused
==========  =======  ==================================================================

A negative int64 is a ten-byte varint of its 64-bit two's complement. A repeated scalar field
may arrive packed (one LEN field holding the values back to back) or unpacked (one field per
value), and a reader must accept both. For a singular field the last occurrence wins. Fields a
reader does not know are skipped.

Nothing is copied: :class:`Message` records where each field's value lies in the buffer, and
float arrays are ``numpy.frombuffer`` views of it, so on a memory-mapped file a weight blob is
read from disk only when it is used. Malformed input raises :class:`WeightImportError` naming the
file and the byte offset of the fault.
"""
import numpy as np

from .common import WeightImportError

VARINT, I64, LEN, I32 = 0, 1, 2, 5
WIRE_TYPE_NAMES = {VARINT: "varint", I64: "64-bit", LEN: "length-delimited", I32: "32-bit"}
FIXED_SIZES = {I64: 8, I32: 4}
MAX_VARINT_BYTES = 10
# Field occurrences indexed per file, over all its messages. Weights arrive as packed arrays (one
# field each), so a CaffeNet .caffemodel or ONNX file has 200-300 (the test fixtures, which have
# CaffeNet's layers); a file of millions of tiny fields would make the index take gigabytes.
MAX_FIELDS = 500_000
UINT64_LIMIT = 1 << 64
INT64_SIGN = 1 << 63


def wire_error(file_name, offset, what):
    return WeightImportError(f"{file_name}: corrupt or truncated protobuf data at byte {offset}: {what}")


def read_varint(buffer, pos, end, file_name):
    """Decode the varint at ``buffer[pos:end]``: returns ``(value, position after it)``."""
    value = 0
    for index in range(MAX_VARINT_BYTES):
        if pos + index >= end:
            raise wire_error(file_name, pos, "varint runs past the end of its message")
        byte = buffer[pos + index]
        value |= (byte & 0x7F) << (7 * index)
        if byte < 0x80:
            if value >= UINT64_LIMIT:
                raise wire_error(file_name, pos, "varint does not fit in 64 bits")
            return value, pos + index + 1
    raise wire_error(file_name, pos, f"varint longer than {MAX_VARINT_BYTES} bytes")


def as_int64(value):
    """Reinterpret an unsigned 64-bit varint as the two's complement int64 it encodes."""
    return value - UINT64_LIMIT if value >= INT64_SIGN else value


class Message:
    """One message of ``buffer[start:end]``, its fields indexed by number.

    Each field occurrence is kept as ``(wire_type, offset, value)``: for VARINT the decoded
    integer, for the other wire types the end of the payload (the payload is ``offset:value``).
    """

    def __init__(self, buffer, start=0, end=None, file_name="<buffer>", budget=None):
        self.buffer = buffer
        self.file_name = file_name
        self.start = start
        self.end = len(buffer) if end is None else end
        self.budget = budget if budget is not None else [MAX_FIELDS]  # fields left to index in this file
        self._fields = {}
        self._scan()

    def _scan(self):
        pos, end = self.start, self.end
        while pos < end:
            key_offset = pos
            key, pos = read_varint(self.buffer, pos, end, self.file_name)
            number, wire_type = key >> 3, key & 7
            if number == 0:
                raise wire_error(self.file_name, key_offset, "field number 0")
            if wire_type == VARINT:
                value, pos = read_varint(self.buffer, pos, end, self.file_name)
                entry = (VARINT, key_offset, value)
            elif wire_type in FIXED_SIZES:
                entry = (wire_type, pos, pos + FIXED_SIZES[wire_type])
                pos = entry[2]
            elif wire_type == LEN:
                length, pos = read_varint(self.buffer, pos, end, self.file_name)
                entry = (LEN, pos, pos + length)
                pos = entry[2]
            else:
                raise wire_error(self.file_name, key_offset,
                                 f"field {number} has wire type {wire_type}, which is no valid or supported type")
            if pos > end:
                raise wire_error(self.file_name, key_offset,
                                 f"field {number} runs past the end of its message (byte {end})")
            self._fields.setdefault(number, []).append(entry)
            self.budget[0] -= 1
            if self.budget[0] < 0:
                raise wire_error(self.file_name, key_offset, f"more than {MAX_FIELDS:,} fields in the file; Caffe and "
                                 "ONNX weights are packed arrays, so this is not a weight file (or one too odd to read)")

    def _error(self, offset, what):
        return wire_error(self.file_name, offset, what)

    def _occurrences(self, number, wire_type):
        entries = self._fields.get(number, [])
        for found, offset, _ in entries:
            if found != wire_type:
                raise self._error(offset, f"field {number} is {WIRE_TYPE_NAMES[found]}, "
                                          f"expected {WIRE_TYPE_NAMES[wire_type]}")
        return entries

    def has(self, number, wire_type=None):
        """Whether field ``number`` occurs (with ``wire_type``, when given)."""
        return any(wire_type in (None, found) for found, _, _ in self._fields.get(number, []))

    def uint(self, number, default=0):
        """The last value of a singular varint field (uint32/uint64/bool/enum)."""
        entries = self._occurrences(number, VARINT)
        return entries[-1][2] if entries else default

    def int64(self, number, default=0):
        return as_int64(self.uint(number, default))

    def string(self, number, default=""):
        """The last value of a string field, decoded as UTF-8."""
        entries = self._occurrences(number, LEN)
        return self._text(number, *entries[-1][1:]) if entries else default

    def strings(self, number):
        """Every value of a repeated string field, in file order."""
        return [self._text(number, start, end) for _, start, end in self._occurrences(number, LEN)]

    def _text(self, number, start, end):
        try:
            return str(self.buffer[start:end], "utf-8")
        except UnicodeDecodeError:
            raise self._error(start, f"field {number} is not valid UTF-8 text") from None

    def span(self, number):
        """``(start, end)`` of the last occurrence of a LEN field, or None."""
        entries = self._occurrences(number, LEN)
        return entries[-1][1:] if entries else None

    def messages(self, number):
        """Every occurrence of a repeated message field, in file order."""
        return [Message(self.buffer, start, end, self.file_name, self.budget)
                for _, start, end in self._occurrences(number, LEN)]

    def message(self, number):
        """The last occurrence of a singular message field, or None."""
        found = self.messages(number)
        return found[-1] if found else None

    def repeated_ints(self, number, limit):
        """A repeated int64/int32 field, packed or not, as a list of (signed) ints; more than
        ``limit`` values are refused, before decoding when a packed run's length proves it (a
        value takes at most MAX_VARINT_BYTES bytes)."""
        entries = self._fields.get(number, [])
        at_least = sum(-(-(value - start) // MAX_VARINT_BYTES) if wire_type == LEN else 1
                       for wire_type, start, value in entries)
        if at_least > limit:
            raise self._error(entries[0][1], f"field {number} holds at least {at_least:,} integers, more than "
                                             f"the {limit:,} it may have; refused")
        values = []
        for wire_type, start, value in entries:
            if wire_type == VARINT:
                values.append(value)
            elif wire_type == LEN:
                pos = start
                while pos < value:
                    item, pos = read_varint(self.buffer, pos, value, self.file_name)
                    values.append(item)
            else:
                raise self._error(start, f"field {number} is {WIRE_TYPE_NAMES[wire_type]}, expected integers")
        if len(values) > limit:
            raise self._error(entries[0][1], f"field {number} holds {len(values):,} integers, more than the "
                                             f"{limit:,} it may have; refused")
        return [as_int64(v) for v in values]

    def repeated_fixed(self, number, dtype):
        """A repeated float/double field, packed or not, as a little-endian numpy array.

        A single packed occurrence (the usual case) is returned as a read-only view of the buffer.
        """
        dtype = np.dtype(dtype).newbyteorder("<")
        element_wire_type = I32 if dtype.itemsize == 4 else I64
        parts = []
        for wire_type, start, end in self._fields.get(number, []):
            if wire_type not in (LEN, element_wire_type):
                raise self._error(start, f"field {number} is {WIRE_TYPE_NAMES[wire_type]}, "
                                         f"expected packed or {dtype.itemsize * 8}-bit values")
            if (end - start) % dtype.itemsize:
                raise self._error(start, f"packed field {number} holds {end - start} bytes, "
                                         f"not a multiple of {dtype.itemsize}")
            parts.append(np.frombuffer(self.buffer, dtype, (end - start) // dtype.itemsize, start))
        if not parts:
            return np.empty(0, dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
