import numpy as np
import pytest

from smalgos.errors import ClientError, UnsupportedAccept, UnsupportedContentType
from smalgos.formats import (CSVDecoder, LibSVMDecoder, MediaType, Predictions, get_decoder,
                             get_encoder, negotiate_accept, negotiate_media_type, parse_accept,
                             parse_media_type)
from smalgos.formats.media import check_params, int_param


def test_parse_lowercases_type_and_param_names_and_unquotes():
    mt = parse_media_type('Text/CSV; Label_Size=1; charset="UTF-8"')
    assert mt == MediaType("text/csv", {"label_size": "1", "charset": "UTF-8"})
    assert str(mt) == "text/csv; label_size=1; charset=UTF-8"


def test_an_unquoted_value_may_hold_commas_but_accept_entries_are_still_split_at_them():
    assert parse_media_type("application/json; infer_max_seqlens=4,1").params == {"infer_max_seqlens": "4,1"}
    assert [str(m) for m in parse_accept("application/json; verbose=1, text/csv")] == [
        "application/json; verbose=1", "text/csv"]


@pytest.mark.parametrize("alias,canonical", [
    ("text/x-libsvm", "text/libsvm"),
    ("application/x-jsonlines", "application/jsonlines"),
    ("application/jsonl", "application/jsonlines"),
    ("APPLICATION/X-RECORDIO-PROTOBUF", "application/x-recordio-protobuf"),
])
def test_aliases_are_normalised(alias, canonical):
    assert parse_media_type(alias).type == canonical


def test_extra_aliases_for_xgboost_style_bare_names():
    with pytest.raises(ClientError, match="cannot parse media type 'csv'"):
        parse_media_type("csv")
    assert parse_media_type("csv; label_size=1", aliases={"csv": "text/csv"}) == \
        MediaType("text/csv", {"label_size": "1"})


@pytest.mark.parametrize("header,fragment", [
    ("", "cannot parse media type ''"),
    ("text/", "cannot parse media type 'text/'"),
    ("text/csv; label_size", "cannot parse parameter 'label_size' of media type 'text/csv; label_size'"),
    ("text csv", "cannot parse media type 'text csv'"),
])
def test_garbage_names_the_header(header, fragment):
    with pytest.raises(ClientError) as e:
        parse_media_type(header)
    assert fragment in str(e.value)


def test_parse_accept_keeps_order_and_drops_q():
    got = parse_accept("application/json;q=0.5, text/csv ,application/jsonlines; verbose=true")
    assert got == [MediaType("application/json", {}), MediaType("text/csv", {}),
                   MediaType("application/jsonlines", {"verbose": "true"})]
    assert parse_accept(None) == [] and parse_accept("  ") == []


def test_check_params_refuses_unknown_and_non_utf8_charset():
    check_params(parse_media_type("text/csv; charset=utf8; label_size=0"), {"label_size", "charset"})
    with pytest.raises(UnsupportedContentType) as e:
        check_params(parse_media_type("text/csv; header=present"), {"label_size", "charset"})
    assert "unsupported parameter 'header'" in e.value.message
    assert "charset, label_size" in e.value.message and e.value.status == 415
    with pytest.raises(UnsupportedContentType, match="unsupported charset 'latin-1'"):
        check_params(parse_media_type("text/csv; charset=latin-1"), {"charset"})


def test_int_param():
    assert int_param(parse_media_type("text/csv"), "label_size", 1) == 1
    assert int_param(parse_media_type("text/csv;label_size=3"), "label_size", 1) == 3
    with pytest.raises(ClientError, match="label_size='x'.*is not an integer"):
        int_param(parse_media_type("text/csv;label_size=x"), "label_size", 1)
    with pytest.raises(ClientError, match="label_size=-1.*must be >= 0"):
        int_param(parse_media_type("text/csv;label_size=-1"), "label_size", 1)


def test_get_decoder_by_string_alias_and_allowed():
    assert isinstance(get_decoder("text/csv; label_size=0"), CSVDecoder)
    assert isinstance(get_decoder("text/x-libsvm"), LibSVMDecoder)
    with pytest.raises(UnsupportedContentType) as e:
        get_decoder("application/json", allowed=["text/csv", "application/x-recordio-protobuf"])
    assert e.value.status == 415
    assert e.value.message == ("content type 'application/json' is not supported; supported: "
                               "text/csv, application/x-recordio-protobuf")


def test_get_decoder_unknown_type_lists_all_registered():
    with pytest.raises(UnsupportedContentType) as e:
        get_decoder("application/x-unheard-of")
    for t in ("text/csv", "application/json", "application/jsonlines", "text/libsvm",
              "application/x-recordio-protobuf", "text/plain", "application/x-recordio", "image/png"):
        assert t in e.value.message


def test_get_decoder_refuses_parameters_the_decoder_does_not_declare():
    with pytest.raises(UnsupportedContentType, match="unsupported parameter 'label_size'"):
        get_decoder("application/x-recordio-protobuf; label_size=1")
    with pytest.raises(UnsupportedContentType, match="unsupported parameter 'label_size'"):
        get_decoder("text/libsvm; label_size=1")


def test_get_encoder_406():
    with pytest.raises(UnsupportedAccept) as e:
        get_encoder("text/libsvm")
    assert e.value.status == 406 and "'text/libsvm' is not supported" in e.value.message


SUPPORTED = ["application/json", "application/jsonlines", "application/x-recordio-protobuf", "text/csv"]


@pytest.mark.parametrize("accept,expected", [
    (None, "application/json"),
    ("", "application/json"),
    ("*/*", "application/json"),
    ("text/csv", "text/csv"),
    ("application/x-foo, application/jsonlines, text/csv", "application/jsonlines"),
    ("text/html;q=1.0, text/*;q=0.8", "text/csv"),
    ("application/*", "application/json"),
    ("image/png, */*", "application/json"),
    ("application/x-recordio-protobuf;q=0.1, text/csv;q=0.9", "text/csv"),
])
def test_negotiate_accept(accept, expected):
    assert negotiate_accept(accept, SUPPORTED, "application/json").media_type == expected


@pytest.mark.parametrize("accept,expected", [
    ("application/json;q=0, application/jsonlines", "application/jsonlines"),  # q=0: not acceptable
    ("application/json;q=0, */*", "application/jsonlines"),          # */* skips the refused default
    ("text/csv;q=0.2, application/jsonlines;q=0.8", "application/jsonlines"),  # higher q wins
    ("*/*;q=0.9, text/csv;q=0.9", "text/csv"),                        # same q: more specific wins
    ("application/*;q=0.5, text/csv;q=0.5", "text/csv"),
    ("text/csv;q=0.5, application/jsonlines;q=0.5", "text/csv"),      # same q and rank: order
    ("text/*;q=0.9, text/csv;q=0.1, application/json;q=0.5", "application/json"),  # text/csv governs
    ("application/*, application/json;q=0", "application/jsonlines"),
    ("text/csv;Q=0.3, application/json;q=0.301", "application/json"),   # Q is q
])
def test_negotiate_honours_q_values(accept, expected):
    assert negotiate_media_type(accept, SUPPORTED, "application/json").type == expected


@pytest.mark.parametrize("accept", ["application/json;q=0", "*/*;q=0", "text/*, text/csv;q=0.0",
                                    "application/json;q=0, application/*;q=0, text/*;q=0"])
def test_negotiate_q_zero_everywhere_is_406(accept):
    with pytest.raises(UnsupportedAccept) as e:
        negotiate_media_type(accept, SUPPORTED, "application/json")
    assert e.value.status == 406 and accept in e.value.message


@pytest.mark.parametrize("q", ["abc", "1.5", "-1", "0.1234"])
def test_negotiate_bad_q_value_is_406_naming_it(q):
    with pytest.raises(UnsupportedAccept, match="q-value") as e:
        negotiate_media_type(f"text/csv;q={q}", SUPPORTED, "application/json")
    assert e.value.status == 406


def test_parse_accept_weighted_keeps_params_before_q_only():
    from smalgos.formats.media import parse_accept_weighted
    assert parse_accept_weighted("application/json; verbose=true; q=0.5; ext=1, text/csv") == [
        (MediaType("application/json", {"verbose": "true"}), 0.5), (MediaType("text/csv", {}), 1.0)]
    assert parse_accept_weighted(None) == [] and parse_accept_weighted(" ") == []


def test_negotiate_wildcard_takes_first_supported_of_the_family():
    got = negotiate_accept("application/*", ["text/csv", "application/jsonlines", "application/json"],
                           "text/csv")
    assert got.media_type == "application/jsonlines"


def test_negotiate_none_supported_names_request_and_offer():
    with pytest.raises(UnsupportedAccept) as e:
        negotiate_accept("image/png, text/html", SUPPORTED, "application/json")
    assert e.value.status == 406
    assert e.value.message == ("none of the types in Accept 'image/png, text/html' is supported; "
                               "supported: " + ", ".join(SUPPORTED))


def test_negotiate_keeps_parameters_of_the_chosen_entry():
    mt = negotiate_media_type("application/json; verbose=true", SUPPORTED, "text/csv")
    assert mt == MediaType("application/json", {"verbose": "true"})


def test_negotiated_encoder_encodes():
    enc = negotiate_accept("text/csv", SUPPORTED, "application/json")
    assert enc.encode(Predictions({"score": np.array([0.5, 1], np.float32)})) == b"0.5\n1.0\n"


@pytest.mark.parametrize("header", [
    "text/csv; encoding=utf-8", "text/csv; charset=utf-8", "text/csv; encoding=UTF8; label_size=1",
    "text/libsvm; charset=utf8", "text/libsvm; encoding=UTF-8", "text/x-libsvm; charset=utf-8",
    "application/json; charset=utf-8", "application/jsonlines; encoding=utf8",
])
def test_utf8_charset_or_encoding_is_accepted_by_the_text_decoders(header):
    media = parse_media_type(header)
    decoder = get_decoder(media)
    decoder.decode(b"", media, default_label_size=0, source="request body")  # its own check too


@pytest.mark.parametrize("header, fragment", [
    ("text/csv; encoding=latin-1", "unsupported encoding 'latin-1'"),
    ("text/libsvm; charset=utf-16", "unsupported charset 'utf-16'"),
    ("text/libsvm; encoding=ascii", "unsupported encoding 'ascii'"),
])
def test_other_charsets_are_refused_naming_the_parameter(header, fragment):
    with pytest.raises(UnsupportedContentType, match=fragment) as e:
        get_decoder(header)
    assert e.value.status == 415


def test_binary_types_still_refuse_a_charset():
    with pytest.raises(UnsupportedContentType, match="unsupported parameter 'charset'"):
        get_decoder("application/x-recordio-protobuf; charset=utf-8")
