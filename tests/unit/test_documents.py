"""Documents from outside read within bounds (controller/documents.py): the config file,
SetQosPolicy's document, the files fabricctl reads."""

from __future__ import annotations

import time

import pytest

from aifabric.v1 import fabric_pb2 as pb
from apps.api.messages import validate_policy
from controller.core.errors import InvalidArgument
from controller.documents import DocumentError, load

# 314 bytes that PyYAML's safe_load expands into ~10^9 list items (a "billion laughs")
BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x]"] + [
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}]" for i in range(8)]) + "\nprofile: *i\n"


def test_plain_documents_read_as_before():
    assert load("classes: [{name: roce, dscp: [26]}]\n", 1000) == {
        "classes": [{"name": "roce", "dscp": [26]}]}
    assert load('{"a": [1, 2.5, null, true]}', 1000) == {"a": [1, 2.5, None, True]}
    assert load("base: &b {x: 1}\n", 100) == {"base": {"x": 1}}  # (an anchor alone is fine)
    assert load("", 10) is None


@pytest.mark.parametrize("text,reason", [
    (BOMB, "aliases (*name) are not accepted at line 2"),
    ("[" * 5000 + "]" * 5000, "nested deeper than 32 levels"),
    ("a: " + "9" * 5000, "a value cannot be read: Exceeds the limit"),
    ("a: [\n", "expected the node content"),
    ("x" * 101, "larger than 100 bytes"),
])
def test_what_is_refused_and_why_in_one_line(text, reason):
    t0 = time.process_time()  # (the parser's work, however the machine schedules it)
    with pytest.raises(DocumentError) as err:
        load(text, 100 if text.startswith("xx") else 1 << 20)
    assert reason in str(err.value) and "\n" not in str(err.value), err.value
    assert time.process_time() - t0 < 0.5


def test_a_qos_policy_document_that_would_explode_is_an_invalid_argument():
    for doc, reason in ((BOMB, "aliases"), ("[" * 5000, "nested deeper"),
                        ("profile: " + "p" * 5000, "unknown profile")):
        with pytest.raises(InvalidArgument) as err:
            validate_policy(pb.SetQosPolicyRequest(document=doc))
        assert str(err.value).startswith(("document:", "profile:")), err.value
        assert reason in str(err.value) and len(str(err.value)) < 400, err.value
