"""The language and culture-group registry against the codes the staged datasets actually use.

Codes are read from the data mirror (NEUROSPEC_DATA) (file and folder names, the XWinograd language column, Belebele
metadata, BLEnD files), not typed in; the hand tables below only say what some of them must mean.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from neurospec import languages as L
from neurospec.data.languages import (
    AMPLIFICATION_LANGUAGES,
    CULTURE_SPECIFIC_COUNTRIES,
    LAPE_ORDER,
    AmbiguousCountryError,
    AmbiguousLanguageError,
    Language,
    UnknownCountryError,
    UnknownLanguageError,
    all_countries,
    all_languages,
    ambiguous_names,
    from_langid_label,
    installed_langid_labels,
    langid_label,
    register_language,
    resolve,
    resolve_country,
    resolve_many,
)
from neurospec.data.locate import mirror_root
from neurospec.util.errors import NeurospecError

DATA = mirror_root()
DOCS = Path(__file__).parents[1] / "docs" / "languages.md"


def data_dir(name: str) -> Path:
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"dataset folder {path} is absent (expected in the data mirror, NEUROSPEC_DATA)")
    return path


# ---------------------------------------------------------------- codes read from the staged data

def ntrex_file_codes() -> list[str]:
    names = [p.name for p in data_dir("ntrex128").glob("newstest2019-*.txt")]
    codes = [re.fullmatch(r"newstest2019-(?:ref|src)\.(.+)\.txt", n).group(1) for n in names]
    assert len(codes) == 44, names  # 43 references + the English source
    return sorted(codes)


def ntrex_table_codes() -> list[str]:
    lines = (data_dir("ntrex128") / "LANGUAGES.tsv").read_text(encoding="utf-8").splitlines()
    codes = [line.split()[0] for line in lines if line.strip()]
    assert len(codes) == 129  # the rows of LANGUAGES.tsv (incl. regional variants such as eng-GB, fra-CA)
    return codes


def sib_codes() -> list[str]:
    codes = sorted(p.name for p in data_dir("sib200_flores").iterdir() if p.is_dir())
    assert len(codes) == 47
    return codes


def xcopa_codes() -> list[str]:
    codes = sorted(p.name for p in data_dir("xcopa").iterdir() if p.is_dir())
    assert len(codes) == 11
    return codes


def xwinograd_codes() -> list[str]:
    with open(data_dir("xwinograd") / "dataset.tsv", encoding="utf-8") as f:
        codes = sorted({line.split("\t", 1)[0] for line in f if line.strip()})
    assert len(codes) == 6
    return codes


def blend_prefixes() -> list[str]:
    names = [p.name for p in (data_dir("blend") / "annotations").glob("*_data.json")]
    prefixes = sorted(n[: -len("_data.json")] for n in names)
    assert len(prefixes) == 16
    return prefixes


def sib_sentences(code: str, n: int) -> list[str]:
    with open(data_dir("sib200_flores") / code / "test.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row["text"] for row in rows[:n]]


# ---------------------------------------------------------------- every dataset code resolves

def test_every_ntrex_file_code_resolves_to_the_language_whose_ntrex_file_it_is():
    for code in ntrex_file_codes():
        assert resolve(code).ntrex == code, code


def test_every_ntrex_languages_tsv_code_resolves():
    regional = {"eng-GB": "eng_Latn", "eng-US": "eng_Latn", "eng-IN": "eng_Latn", "fra-CA": "fra_Latn",
                "por-BR": "por_Latn", "spa-MX": "spa_Latn", "gsw-BE": "gsw_Latn"}
    for code in ntrex_table_codes():
        lang = resolve(code)
        if code in regional:
            assert lang.key == regional[code], code
        else:
            assert lang.ntrex == code, code


def test_every_sib200_folder_is_a_registry_key_and_flores_code():
    for code in sib_codes():
        lang = resolve(code)
        assert lang.key == code and lang.flores200 == code


def test_every_xcopa_folder_resolves_to_the_language_with_that_xcopa_code():
    for code in xcopa_codes():
        assert resolve(code).xcopa == code
        assert (data_dir("xcopa") / code / f"test.{code}.jsonl").is_file()


def test_every_xwinograd_language_column_code_resolves():
    assert xwinograd_codes() == ["en", "fr", "jp", "pt", "ru", "zh"]
    for code in xwinograd_codes():
        assert resolve(code).xwinograd == code


def test_belebele_file_names_and_metadata_languages_are_registry_keys():
    for path in sorted(data_dir("belebele_en_de").glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            meta_langs = {json.loads(line)["metadata"]["extra"]["language"] for line in f if line.strip()}
        assert meta_langs == {path.stem}
        assert resolve(path.stem).key == path.stem


def test_lape_order_is_the_reference_files_order():
    assert [lang.iso639_1 for lang in LAPE_ORDER] == ["en", "zh", "fr", "es", "vi", "id", "ja"]
    assert [lang.key for lang in LAPE_ORDER] == ["eng_Latn", "zho_Hans", "fra_Latn", "spa_Latn", "vie_Latn",
                                                 "ind_Latn", "jpn_Jpan"]


def test_amplification_languages_are_the_18_of_the_paper_all_with_sib200_data():
    assert [lang.key for lang in AMPLIFICATION_LANGUAGES] == [
        "eng_Latn", "nld_Latn", "ind_Latn", "zsm_Latn", "vie_Latn", "jpn_Jpan", "zho_Hans", "fra_Latn", "por_Latn",
        "rus_Cyrl", "est_Latn", "hat_Latn", "ita_Latn", "quy_Latn", "swh_Latn", "tam_Taml", "tha_Thai", "tur_Latn"]
    assert {lang.key for lang in AMPLIFICATION_LANGUAGES} <= set(sib_codes())
    xcopa = {resolve(code).key for code in xcopa_codes()}
    assert xcopa <= {lang.key for lang in AMPLIFICATION_LANGUAGES}  # every XCOPA language is amplified


# ---------------------------------------------------------------- what the codes mean (hand table)

EXPECTED = {
    "zho-CN": "zho_Hans", "zh": "zho_Hans", "zho": "zho_Hans", "ZH_cn": "zho_Hans", "Chinese": "zho_Hans",
    "zho-TW": "zho_Hant", "zh-Hant": "zho_Hant",
    "jp": "jpn_Jpan", "ja": "jpn_Jpan", "jpn": "jpn_Jpan", "Japanese": "jpn_Jpan", "JAPANESE ": "jpn_Jpan",
    "swa": "swh_Latn", "sw": "swh_Latn", "swh": "swh_Latn", "Swahili": "swh_Latn",
    "msa": "zsm_Latn", "ms": "zsm_Latn", "malay": "zsm_Latn",
    "ara": "arb_Arab", "ar": "arb_Arab", "arb": "arb_Arab", "arabic": "arb_Arab",
    "fas": "pes_Arab", "fa": "pes_Arab", "persian": "pes_Arab", "farsi": "pes_Arab",
    "uzb": "uzn_Latn", "uz": "uzn_Latn", "npi": "npi_Deva", "nep": "npi_Deva", "ne": "npi_Deva",
    "aze-Latn": "azj_Latn", "az": "azj_Latn", "Azerbaijani": "azj_Latn",
    "fil": "tgl_Latn", "Filipino": "tgl_Latn", "tl": "tgl_Latn",
    "eng": "eng_Latn", "en": "eng_Latn", "English": "eng_Latn",
    "ht": "hat_Latn", "qu": "quy_Latn", "quechua": "quy_Latn", "et": "est_Latn",
    "as": "asm_Beng", "Assamese": "asm_Beng", "su": "sun_Latn", "Sundanese": "sun_Latn",
    "am": "amh_Ethi", "ha": "hau_Latn", "el": "ell_Grek", "ko": "kor_Hang",
    "sr": "srp_Cyrl", "srp-Latn": "srp_Latn", "Algerian Arabic": "arq_Arab",
    "lav": "lvs_Latn", "mon": "khk_Cyrl", "orm": "gaz_Latn", "pus": "pbt_Arab", "mlg": "plt_Latn", "sqi": "als_Latn",
}


@pytest.mark.parametrize("name,key", sorted(EXPECTED.items()))
def test_names_resolve_to_the_expected_language(name, key):
    assert resolve(name).key == key


def test_round_trip_canonical_to_each_code_and_back():
    for lang in all_languages():
        for code in (lang.key, lang.flores200, lang.ntrex, lang.xcopa, lang.xwinograd):
            if code:  # dataset codes name exactly one language
                assert resolve(code) is lang, (lang.key, code)
        for code in lang.codes:
            got = ambiguous_names().get(L._norm(code))
            if got:
                with pytest.raises(AmbiguousLanguageError):
                    resolve(code)
            elif lang.default:
                assert resolve(code) is lang, (lang.key, code)
            else:  # a variant's shared names go to the default entry
                other = resolve(code)
                assert other is lang or (other.default and other.iso639_3 == lang.iso639_3), (lang.key, code)
        assert resolve(lang) is lang and resolve(lang.key.upper()) is lang


def test_dataset_codes_are_unique_across_the_registry():
    for attr in ("ntrex", "xcopa", "xwinograd", "flores200"):
        values = [getattr(lang, attr) for lang in all_languages() if getattr(lang, attr)]
        assert len(values) == len(set(values)), attr


def test_only_the_documented_names_are_ambiguous():
    assert ambiguous_names() == {
        "ku": ("ckb_Arab", "kmr_Latn"), "kur": ("ckb_Arab", "kmr_Latn"), "kurdish": ("ckb_Arab", "kmr_Latn"),
        "no": ("nno_Latn", "nob_Latn"), "nor": ("nno_Latn", "nob_Latn"), "norwegian": ("nno_Latn", "nob_Latn"),
        "ff": ("fuc_Latn", "fuv_Latn"), "ful": ("fuc_Latn", "fuv_Latn"), "fula": ("fuc_Latn", "fuv_Latn"),
        "fulah": ("fuc_Latn", "fuv_Latn"),
    }


def test_registry_records_are_consistent():
    for lang in all_languages():
        assert lang.iso639_3 == lang.key[:3] and lang.script == lang.key[4:]
        assert lang.flores200 in (None, lang.key)
    # every variant has a default entry of the same language
    for lang in all_languages():
        if not lang.default:
            assert resolve(lang.iso639_3).default


# ---------------------------------------------------------------- errors

def test_unknown_language_names_the_input_and_suggests_near_matches():
    with pytest.raises(UnknownLanguageError) as info:
        resolve("frnch")
    err = info.value
    assert isinstance(err, NeurospecError) and isinstance(err, KeyError)
    assert err.candidates[0].key == "fra_Latn"
    message = str(err)
    assert message.startswith("Unknown language 'frnch'") and "fra_Latn (French" in message
    assert "register_language" in message


def test_unknown_code_suggests_the_script_variants():
    with pytest.raises(UnknownLanguageError) as info:
        resolve("zho_Hank")
    assert {"zho_Hans", "zho_Hant"} <= {lang.key for lang in info.value.candidates[:2]}
    assert "zho_Hans" in str(info.value)


def test_nonsense_and_empty_names_fail_cleanly():
    with pytest.raises(UnknownLanguageError, match="No close match"):
        resolve("qqqqqqqq")
    with pytest.raises(UnknownLanguageError):
        resolve("  ")
    with pytest.raises(NeurospecError):
        resolve(3)  # type: ignore[arg-type]


def test_ambiguous_names_error_listing_the_candidates():
    with pytest.raises(AmbiguousLanguageError) as info:
        resolve("Norwegian")
    assert {lang.key for lang in info.value.candidates} == {"nob_Latn", "nno_Latn"}
    assert "nob_Latn" in str(info.value) and "nno_Latn" in str(info.value)
    with pytest.raises(AmbiguousLanguageError, match="ckb_Arab.*kmr_Latn"):
        resolve("ku")


def test_resolve_many():
    assert [lang.key for lang in resolve_many("en,zh,fr")] == ["eng_Latn", "zho_Hans", "fra_Latn"]
    assert [lang.key for lang in resolve_many(" jp  swa ")] == ["jpn_Jpan", "swh_Latn"]
    assert [lang.key for lang in resolve_many(["ht", resolve("qu")])] == ["hat_Latn", "quy_Latn"]
    with pytest.raises(NeurospecError, match="named twice"):
        resolve_many("zh,zho_Hans")
    with pytest.raises(NeurospecError, match="No languages"):
        resolve_many("")
    with pytest.raises(UnknownLanguageError):
        resolve_many("en,frnch")


# ---------------------------------------------------------------- registering

@pytest.fixture
def scratch_registry(monkeypatch):
    """Registry state restored after the test."""
    monkeypatch.setattr(L, "_LANGUAGES", dict(L._LANGUAGES))
    monkeypatch.setattr(L, "_INDEX", dict(L._INDEX))
    monkeypatch.setattr(L, "_LANGID_INDEX", dict(L._LANGID_INDEX))


def test_register_language(scratch_registry):
    with pytest.raises(UnknownLanguageError):
        resolve("Klingon")
    tlh = register_language(Language(key="tlh_Latn", name="Klingon", iso639_1=None, iso639_3="tlh", script="Latn",
                                     aliases=("tlhIngan Hol",)))
    assert resolve("klingon") is tlh and resolve("TLH") is tlh and resolve("tlhingan hol") is tlh
    assert tlh in all_languages()
    with pytest.raises(NeurospecError, match="already registered"):
        register_language(tlh)
    replaced = register_language(Language(key="tlh_Latn", name="Klingon", iso639_1=None, iso639_3="tlh",
                                          script="Latn", note="replaced"), replace=True)
    assert resolve("tlh").note == "replaced" and resolve("tlh") is replaced


def test_register_refuses_to_change_what_existing_names_mean(scratch_registry):
    hk = Language(key="zho_Hant", name="Chinese (Hong Kong)", iso639_1="zh", iso639_3="zho", script="Hant")
    with pytest.raises(NeurospecError, match="already registered"):
        register_language(hk)
    clash = Language(key="cmn_Latn", name="Mandarin (Pinyin)", iso639_1="zh", iso639_3="cmn", script="Latn")
    with pytest.raises(NeurospecError, match="'zh'"):
        register_language(clash)
    assert resolve("zh").key == "zho_Hans"
    variant = Language(key="cmn_Latn", name="Mandarin (Pinyin)", iso639_1="zh", iso639_3="cmn", script="Latn",
                       default=False)
    register_language(variant)
    assert resolve("zh").key == "zho_Hans" and resolve("cmn_Latn") is variant


def test_language_records_are_validated():
    with pytest.raises(NeurospecError, match="form"):
        Language(key="zh", name="Chinese", iso639_1="zh", iso639_3="zho", script="Hans")
    with pytest.raises(NeurospecError, match="script"):
        Language(key="zho_Hans", name="Chinese", iso639_1="zh", iso639_3="zho", script="Hant")
    with pytest.raises(NeurospecError, match="iso639_1"):
        Language(key="zho_Hans", name="Chinese", iso639_1="zho", iso639_3="zho", script="Hans")


# ---------------------------------------------------------------- py3langid labels

def test_every_registry_label_is_a_label_of_the_installed_py3langid():
    labels = installed_langid_labels()
    import py3langid.langid as pl  # read the label set independently of the helper, too
    identifier = pl.LanguageIdentifier.from_model_file(pl.MODEL_FILE)
    assert labels == set(identifier.nb_classes)
    for lang in all_languages():
        if lang.langid is not None:
            assert lang.langid in labels, (lang.key, lang.langid)


def test_every_py3langid_label_maps_back_to_a_language():
    for label in installed_langid_labels() - L.LANGID_NO_LANGUAGE:
        lang = from_langid_label(label)
        assert lang is not None and lang.langid == label and lang.default, label
    assert from_langid_label("zxx") is None and from_langid_label("und") is None
    assert from_langid_label("zh").key == "zho_Hans" and from_langid_label("sr").key == "srp_Cyrl"
    with pytest.raises(UnknownLanguageError):
        from_langid_label("xx")


def test_langid_label_accepts_any_name_and_is_none_where_py3langid_lacks_the_language():
    assert langid_label("jp") == "ja" and langid_label("swa") == "sw" and langid_label("zho-CN") == "zh"
    assert langid_label("sun_Latn") is None and langid_label("Algerian Arabic") is None


def test_py3langid_covers_all_18_amplification_languages():
    assert all(lang.langid for lang in AMPLIFICATION_LANGUAGES)


RELIABLE = ["eng_Latn", "fra_Latn", "deu_Latn", "rus_Cyrl", "zho_Hans", "jpn_Jpan", "arb_Arab", "hin_Deva",
            "tha_Thai", "hat_Latn", "quy_Latn", "swh_Latn", "tam_Taml", "kor_Hang"]


@pytest.mark.parametrize("key", RELIABLE)
def test_py3langid_on_real_sentences_returns_the_mapped_label(key):
    import py3langid

    sentences = sib_sentences(key, 20)
    hits = sum(py3langid.classify(s)[0] == langid_label(key) for s in sentences)
    assert hits >= 18, (key, hits)


def test_py3langid_majority_label_matches_the_registry_for_every_sib200_language():
    import py3langid

    for code in sib_codes():
        label = langid_label(code)
        if label is None:
            continue
        sentences = sib_sentences(code, 30)
        hits = sum(py3langid.classify(s)[0] == label for s in sentences)
        assert hits >= 0.7 * len(sentences), (code, label, hits)  # Malay vs Indonesian is the weakest (~80%)


# ---------------------------------------------------------------- culture groups

def test_blend_prefixes_are_exactly_the_registered_groups():
    assert blend_prefixes() == [c.key for c in all_countries()]
    for prefix in blend_prefixes():
        assert resolve_country(prefix).key == prefix
        for kind in ("questions", "prompts"):
            assert (data_dir("blend") / kind / f"{prefix}_{kind}.csv").is_file()


def test_blend_local_text_is_in_the_groups_language():
    """py3langid on each group's local-language questions agrees with the group's language (where it has a label)."""
    import py3langid

    for country in all_countries():
        label = country.language.langid
        with open(data_dir("blend") / "questions" / f"{country.key}_questions.csv", encoding="utf-8") as f:
            questions = [row["Question"] for row in csv.DictReader(f)]
        assert len(questions) == 500
        if label is None:  # Sundanese: py3langid has no label
            assert country.key == "West_Java"
            continue
        hits = sum(py3langid.classify(q)[0] == label for q in questions)
        assert hits >= 400, (country.key, label, hits)  # China is lowest: short questions read as Wu ('wuu')


def test_blend_sources_and_id_codes_match_the_questions_files():
    with open(data_dir("blend") / "questions" / "UK_questions.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_source = {c.blend_source: c for c in all_countries() if c.blend_source}
    sources = {row["Source"] for row in rows}
    assert sources - set(by_source) == {"Korean (Korea)"}  # not attributable to either Korea
    for row in rows:
        country = by_source.get(row["Source"])
        if country is not None:
            assert row["ID"].split("-")[1] == country.blend_id_code, row["ID"]
    ids = [json.loads((data_dir("blend") / "annotations" / f"{p}_data.json").read_text(encoding="utf-8")).keys()
           for p in ("UK", "Algeria")]
    assert set(ids[0]) == set(ids[1]) == {row["ID"] for row in rows}  # the same 500 ids in every group


COUNTRY_NAMES = {
    "United Kingdom": "UK", "GB": "UK", "uk": "UK", "Great Britain": "UK", "USA": "US", "United States": "US",
    "u.s.": "US", "South Korea": "South_Korea", "south-korea": "South_Korea", "KR": "South_Korea",
    "North Korea": "North_Korea", "DPRK": "North_Korea", "west java": "West_Java",
    "Northern Nigeria": "Northern_Nigeria",
    "PRC": "China", "IRN": "Iran", "mexico": "Mexico",
}


@pytest.mark.parametrize("name,key", sorted(COUNTRY_NAMES.items()))
def test_country_names_resolve(name, key):
    assert resolve_country(name).key == key


def test_korea_is_ambiguous_and_unknown_countries_get_suggestions():
    with pytest.raises(AmbiguousCountryError) as info:
        resolve_country("Korea")
    assert {c.key for c in info.value.candidates} == {"North_Korea", "South_Korea"}
    assert "North_Korea" in str(info.value) and "South_Korea" in str(info.value)
    assert isinstance(info.value, NeurospecError) and isinstance(info.value, KeyError)
    with pytest.raises(UnknownCountryError) as info:
        resolve_country("Grece")
    assert info.value.candidates[0].key == "Greece" and "Grece" in str(info.value)


def test_country_languages():
    expected = {"Algeria": "arb_Arab", "Assam": "asm_Beng", "Azerbaijan": "azj_Latn", "China": "zho_Hans",
                "Ethiopia": "amh_Ethi", "Greece": "ell_Grek", "Indonesia": "ind_Latn", "Iran": "pes_Arab",
                "Mexico": "spa_Latn", "North_Korea": "kor_Hang", "Northern_Nigeria": "hau_Latn",
                "South_Korea": "kor_Hang", "Spain": "spa_Latn", "UK": "eng_Latn", "US": "eng_Latn",
                "West_Java": "sun_Latn"}
    assert {c.key: c.language.key for c in all_countries()} == expected
    for c in all_countries():  # BLEnD's own code names the same language
        assert resolve(c.blend_language) is c.language


def test_culture_specific_countries():
    assert [c.key for c in CULTURE_SPECIFIC_COUNTRIES] == [
        "China", "Indonesia", "Iran", "Mexico", "South_Korea", "Spain", "UK", "US"]


# ---------------------------------------------------------------- docs

def test_docs_tables_are_generated_from_the_registry():
    text = DOCS.read_text(encoding="utf-8")
    assert L.languages_markdown() in text, "docs/languages.md is stale: regenerate the languages table"
    assert L.countries_markdown() in text, "docs/languages.md is stale: regenerate the countries table"


def test_cli_languages_resolves_and_suggests():
    from typer.testing import CliRunner

    from neurospec.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["languages", "zho-CN", "jp"], env={"COLUMNS": "150"})
    assert result.exit_code == 0, result.output
    assert "zho_Hans" in result.output and "jpn_Jpan" in result.output
    result = runner.invoke(app, ["languages", "frnch"])
    assert result.exit_code == 2 and "fra_Latn" in result.output
