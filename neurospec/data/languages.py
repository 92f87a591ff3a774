"""Languages and culture groups: one registry for every code the methods and datasets use.

    from neurospec.data.languages import resolve, resolve_many, resolve_country, langid_label
    resolve("jp").key                  # 'jpn_Jpan'  (XWinograd's code)
    resolve("zho-CN").key              # 'zho_Hans'  (NTREX's code); also "zh", "zho", "Chinese"
    resolve("swa").ntrex               # 'swa'; resolve("swa").key == 'swh_Latn'
    [l.iso639_1 for l in resolve_many("en,zh,fr")]   # ['en', 'zh', 'fr']
    langid_label("quy_Latn")           # 'qu' (the py3langid label), None where py3langid lacks the language
    resolve_country("United Kingdom").key            # 'UK' (the BLEnD file prefix)

A language's canonical id (``Language.key``) is its FLORES-200 code, ISO 639-3 + ISO 15924 script
(``zho_Hans``, ``eng_Latn``). ``resolve`` also accepts, case-insensitively and with ``-`` and ``_``
interchangeable: ISO 639-1 and 639-3 codes, NTREX-128 file codes (``zho-CN``, ``aze-Latn``), XCOPA and
XWinograd codes (``jp``), English names and aliases (``Japanese``, ``farsi``). A code shared by several
entries resolves to the one entry marked default (``zh`` -> ``zho_Hans``, not ``zho_Hant``); where no
single default exists (``no``: Bokmål or Nynorsk?) resolution fails and lists the candidates.
An unknown name fails with the closest matches and how to register a language. See docs/languages.md.

The tables below are data, one row per language or country; edit a row, not the code.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Union

from neurospec.util.errors import NeurospecError

__all__ = [
    "AMPLIFICATION_LANGUAGES", "AmbiguousCountryError", "AmbiguousLanguageError", "CULTURE_SPECIFIC_COUNTRIES",
    "Country", "LAPE_ORDER", "LANGID_NO_LANGUAGE", "Language", "UnknownCountryError", "UnknownLanguageError",
    "all_countries", "all_languages", "ambiguous_names", "countries_markdown", "from_langid_label",
    "installed_langid_labels", "langid_label", "languages_markdown", "register_language", "resolve",
    "resolve_country", "resolve_many",
]


# ----------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------

class _NameLookupError(NeurospecError, KeyError):
    """A name that does not resolve. Also a KeyError, so ``except KeyError`` catches it too."""

    def __init__(self, message: str, query: object, candidates: tuple = ()) -> None:
        super().__init__(message)
        self.message = message
        self.query = query
        self.candidates = candidates

    def __str__(self) -> str:  # KeyError would print the message quoted, as repr()
        return self.message


class UnknownLanguageError(_NameLookupError):
    """No registered language has this code or name; ``candidates`` holds the closest matches."""


class AmbiguousLanguageError(_NameLookupError):
    """Several languages share this code or name and none is the default; ``candidates`` holds them."""


class UnknownCountryError(_NameLookupError):
    """No culture group (BLEnD country or region) has this name; ``candidates`` holds the closest matches."""


class AmbiguousCountryError(_NameLookupError):
    """Several culture groups share this name (``Korea``); ``candidates`` holds them."""


# ----------------------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------------------

_KEY_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


@dataclass(frozen=True)
class Language:
    """One language (in one script). Usage: ``resolve("jp")`` returns ``Language(key="jpn_Jpan", ...)``.

    key        canonical id: FLORES-200 style ``<ISO 639-3>_<ISO 15924>`` (``zho_Hans``); for languages
               outside FLORES-200 the same form is used and ``flores200`` is None
    name       English name
    iso639_1   two-letter code, or None
    iso639_3   three-letter code (the individual language, e.g. ``zsm``; macrolanguage codes such as
               ``msa`` are aliases)
    script     ISO 15924 script code (``Latn``, ``Hans``, ``Jpan``)
    flores200  FLORES-200 / SIB-200 / Belebele code, or None
    ntrex      NTREX-128 file code (``newstest2019-ref.<ntrex>.txt``; English: the source file ``src.eng``)
    xcopa      XCOPA folder code, where XCOPA has the language
    xwinograd  XWinograd language-column code, where XWinograd has the language
    langid     the label py3langid returns for text in this language, or None if it has none
    aliases    further names that resolve to this language (lower case is fine)
    default    False for a variant (``zho_Hant``, ``srp_Latn``): names it shares with another entry
               (``zh``, ``sr``, the py3langid label) go to the default entry instead
    note       free text shown in the docs table
    """

    key: str
    name: str
    iso639_1: str | None
    iso639_3: str
    script: str
    flores200: str | None = None
    ntrex: str | None = None
    xcopa: str | None = None
    xwinograd: str | None = None
    langid: str | None = None
    aliases: tuple[str, ...] = ()
    default: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _KEY_RE.match(self.key):
            raise NeurospecError(
                f"Language key {self.key!r} is not of the form '<ISO 639-3>_<ISO 15924>' such as 'zho_Hans' "
                f"or 'eng_Latn'. Use the FLORES-200 code where FLORES-200 has the language."
            )
        if self.script != self.key[4:]:
            raise NeurospecError(f"Language {self.key!r}: script {self.script!r} differs from the key's "
                                 f"script {self.key[4:]!r}; make them equal.")
        if not re.match(r"^[a-z]{3}$", self.iso639_3 or ""):
            raise NeurospecError(f"Language {self.key!r}: iso639_3 {self.iso639_3!r} is not three lower-case letters.")
        if self.iso639_1 is not None and not re.match(r"^[a-z]{2}$", self.iso639_1):
            raise NeurospecError(f"Language {self.key!r}: iso639_1 {self.iso639_1!r} is not two lower-case letters "
                                 f"(use None where the language has no ISO 639-1 code).")
        if not self.name:
            raise NeurospecError(f"Language {self.key!r} needs an English name.")
        if isinstance(self.aliases, str):
            raise NeurospecError(f"Language {self.key!r}: aliases must be a tuple of strings, not one string.")
        object.__setattr__(self, "aliases", tuple(self.aliases))

    def __str__(self) -> str:
        return self.key

    @property
    def codes(self) -> tuple[str, ...]:
        """Every name that can resolve to this language (before the default rule), in table order."""
        names = [self.key, self.flores200, self.iso639_1, self.iso639_3, self.ntrex, self.xcopa,
                 self.xwinograd, self.name, *self.aliases]
        seen: dict[str, None] = {}
        for name in names:
            if name:
                seen.setdefault(name, None)
        return tuple(seen)


@dataclass(frozen=True)
class Country:
    """A culture group: a BLEnD country or region. Usage: ``resolve_country("USA").languages[0].key``.

    key             BLEnD file prefix (``annotations/<key>_data.json``, ``questions/<key>_questions.csv``)
    name            display name
    language_keys   registry keys of the local language(s), first = the language of BLEnD's local text
    blend_language  BLEnD's own code for that language (``ar`` for Algeria, ``su`` for West Java)
    blend_source    the ``Source`` value in BLEnD's questions files for the questions this group's
                    annotators wrote (``English (UK)``), or None
    blend_id_code   the middle part of those questions' ids (``Al-en-06`` -> ``en``), or None. It names the
                    source language, not the group: UK and US share ``en``, Spain and Mexico differ
                    (``sp``, ``spme``). Every group's files hold the same 500 ids.
    aliases         further names (ISO 3166 codes, common names)
    note            free text shown in the docs table
    """

    key: str
    name: str
    language_keys: tuple[str, ...]
    blend_language: str
    blend_source: str | None = None
    blend_id_code: str | None = None
    aliases: tuple[str, ...] = ()
    note: str = ""

    def __str__(self) -> str:
        return self.key

    @property
    def languages(self) -> tuple[Language, ...]:
        """The local languages as registry records."""
        return tuple(resolve(key) for key in self.language_keys)

    @property
    def language(self) -> Language:
        """The language of BLEnD's local-language text for this group."""
        return resolve(self.language_keys[0])

    @property
    def codes(self) -> tuple[str, ...]:
        """Every name that resolves to this group."""
        return tuple(dict.fromkeys([self.key, self.name, *self.aliases]))


# ----------------------------------------------------------------------------------------------------------
# The language table: one row per language.
#   key | English name | ISO 639-1 | NTREX | XCOPA | XWinograd | py3langid label | flags | aliases
# ISO 639-3 and the script are the two halves of the key. "-" = none.
# flags: "alt" = not the default for names shared with another entry; "noflores" = not a FLORES-200 code.
# py3langid labels are those of py3langid 0.4 (its 140-label model); see installed_langid_labels().
# ----------------------------------------------------------------------------------------------------------

_LANGUAGE_TABLE = """
ace_Arab | Acehnese (Arabic script) | - | - | - | - | - | alt |
ace_Latn | Acehnese (Latin script) | - | - | - | - | ace | | acehnese
acm_Arab | Mesopotamian Arabic | - | - | - | - | - | | iraqi arabic
acq_Arab | Ta'izzi-Adeni Arabic | - | - | - | - | - | |
aeb_Arab | Tunisian Arabic | - | - | - | - | - | |
afr_Latn | Afrikaans | af | afr | - | - | af | |
ajp_Arab | South Levantine Arabic | - | - | - | - | - | |
aka_Latn | Akan | ak | - | - | - | - | |
als_Latn | Tosk Albanian | sq | sqi | - | - | sq | | albanian, alb
amh_Ethi | Amharic | am | amh | - | - | am | |
apc_Arab | North Levantine Arabic | - | - | - | - | - | |
arb_Arab | Modern Standard Arabic | ar | arb | - | - | ar | | arabic, ara, standard arabic
arb_Latn | Modern Standard Arabic (Romanized) | ar | - | - | - | - | alt |
arg_Latn | Aragonese | an | - | - | - | an | noflores |
arq_Arab | Algerian Arabic | - | - | - | - | - | noflores | darja
ars_Arab | Najdi Arabic | - | - | - | - | - | |
ary_Arab | Moroccan Arabic | - | - | - | - | ary | | darija
arz_Arab | Egyptian Arabic | - | - | - | - | arz | |
asm_Beng | Assamese | as | - | - | - | as | |
ast_Latn | Asturian | - | - | - | - | - | |
awa_Deva | Awadhi | - | - | - | - | - | |
ayr_Latn | Central Aymara | ay | - | - | - | - | | aymara, aym
azb_Arab | South Azerbaijani | - | - | - | - | - | |
azj_Latn | North Azerbaijani | az | aze-Latn | - | - | az | | azerbaijani, aze, azeri
bak_Cyrl | Bashkir | ba | bak | - | - | ba | |
bam_Latn | Bambara | bm | - | - | - | - | |
ban_Latn | Balinese | - | - | - | - | - | |
bcl_Latn | Central Bikol | - | - | - | - | bcl | noflores | bikol
bel_Cyrl | Belarusian | be | bel | - | - | be | |
bem_Latn | Bemba | - | bem | - | - | - | |
ben_Beng | Bengali | bn | ben | - | - | bn | | bangla
bho_Deva | Bhojpuri | - | - | - | - | - | |
bjn_Arab | Banjar (Arabic script) | - | - | - | - | - | alt |
bjn_Latn | Banjar (Latin script) | - | - | - | - | - | | banjar
bod_Tibt | Standard Tibetan | bo | bod | - | - | - | | tibetan, tib
bos_Latn | Bosnian | bs | bos | - | - | bs | |
bre_Latn | Breton | br | - | - | - | br | noflores |
bug_Latn | Buginese | - | - | - | - | - | |
bul_Cyrl | Bulgarian | bg | bul | - | - | bg | |
cat_Latn | Catalan | ca | cat | - | - | ca | | valencian
ceb_Latn | Cebuano | - | - | - | - | - | |
ces_Latn | Czech | cs | ces | - | - | cs | | cze
cjk_Latn | Chokwe | - | - | - | - | - | |
ckb_Arab | Central Kurdish | - | ckb-Arab | - | - | - | | sorani, kurdish, ku, kur
crh_Latn | Crimean Tatar | - | - | - | - | crh | |
cym_Latn | Welsh | cy | cym | - | - | cy | | wel
dan_Latn | Danish | da | dan | - | - | da | |
deu_Latn | German | de | deu | - | - | de | | ger
dik_Latn | Southwestern Dinka | - | - | - | - | - | | dinka
div_Thaa | Dhivehi | dv | div | - | - | - | noflores | divehi, maldivian
dyu_Latn | Dyula | - | - | - | - | - | |
dzo_Tibt | Dzongkha | dz | dzo | - | - | dz | |
ell_Grek | Greek | el | ell | - | - | el | | modern greek, gre
eng_Latn | English | en | eng | - | en | en | | eng-GB, eng-US, eng-IN
epo_Latn | Esperanto | eo | - | - | - | eo | |
est_Latn | Estonian | et | est | et | - | et | |
eus_Latn | Basque | eu | eus | - | - | eu | | baq
ewe_Latn | Ewe | ee | ewe | - | - | - | |
ext_Latn | Extremaduran | - | - | - | - | ext | noflores |
fao_Latn | Faroese | fo | fao | - | - | fo | |
fij_Latn | Fijian | fj | fij | - | - | - | |
fin_Latn | Finnish | fi | fin | - | - | fi | |
fon_Latn | Fon | - | - | - | - | - | |
fra_Latn | French | fr | fra | - | fr | fr | | fre, fra-CA
fry_Latn | Western Frisian | fy | - | - | - | fy | noflores | frisian
fuc_Latn | Pulaar | - | fuc | - | - | - | noflores | fula, fulah, ful, ff
fur_Latn | Friulian | - | - | - | - | - | |
fuv_Latn | Nigerian Fulfulde | - | - | - | - | fuv | | fula, fulah, ful, ff
gaz_Latn | West Central Oromo | om | orm | - | - | om | | oromo
gcf_Latn | Guadeloupean Creole French | - | - | - | - | gcf | noflores |
gcr_Latn | Guianese Creole French | - | - | - | - | gcr | noflores |
gla_Latn | Scottish Gaelic | gd | - | - | - | gd | | gaelic
gle_Latn | Irish | ga | gle | - | - | ga | |
glg_Latn | Galician | gl | glg | - | - | gl | |
gom_Deva | Goan Konkani | - | - | - | - | gom | noflores | konkani
grc_Grek | Ancient Greek | - | - | - | - | grc | noflores |
grn_Latn | Guarani | gn | - | - | - | gug | | paraguayan guarani
gsw_Latn | Swiss German | - | gsw-ZH | - | - | - | noflores | gsw-BE
guj_Gujr | Gujarati | gu | guj | - | - | gu | |
guw_Latn | Gun | - | - | - | - | guw | noflores |
hat_Latn | Haitian Creole | ht | - | ht | - | ht | | haitian
hau_Latn | Hausa | ha | hau | - | - | ha | |
hbo_Hebr | Ancient Hebrew | - | - | - | - | hbo | noflores |
heb_Hebr | Hebrew | he | heb | - | - | he | | iw
hin_Deva | Hindi | hi | hin | - | - | hi | |
hmn_Latn | Hmong | - | hmn | - | - | - | noflores |
hne_Deva | Chhattisgarhi | - | - | - | - | - | |
hrv_Latn | Croatian | hr | hrv | - | - | hr | |
hun_Latn | Hungarian | hu | hun | - | - | hu | |
hye_Armn | Armenian | hy | hye | - | - | hy | | arm
ibo_Latn | Igbo | ig | ibo | - | - | ig | |
ilo_Latn | Ilocano | - | - | - | - | - | |
ind_Latn | Indonesian | id | ind | id | - | id | |
isl_Latn | Icelandic | is | isl | - | - | is | | ice
ita_Latn | Italian | it | ita | it | - | it | |
jav_Latn | Javanese | jv | - | - | - | jv | |
jpn_Jpan | Japanese | ja | jpn | - | jp | ja | |
kab_Latn | Kabyle | - | - | - | - | kab | |
kac_Latn | Jingpho | - | - | - | - | - | |
kam_Latn | Kamba | - | - | - | - | - | |
kan_Knda | Kannada | kn | kan | - | - | kn | |
kas_Arab | Kashmiri (Arabic script) | ks | - | - | - | - | | kashmiri
kas_Deva | Kashmiri (Devanagari script) | ks | - | - | - | - | alt |
kat_Geor | Georgian | ka | kat | - | - | ka | | geo
kaz_Cyrl | Kazakh | kk | kaz | - | - | kk | |
kbp_Latn | Kabiyè | - | - | - | - | - | | kabiye
kea_Latn | Kabuverdianu | - | - | - | - | - | | cape verdean creole
khk_Cyrl | Halh Mongolian | mn | mon | - | - | mn | | mongolian
khm_Khmr | Khmer | km | khm | - | - | km | |
kik_Latn | Kikuyu | ki | - | - | - | kik | |
kin_Latn | Kinyarwanda | rw | kin | - | - | rw | |
kir_Cyrl | Kyrgyz | ky | kir | - | - | ky | | kirghiz
kmb_Latn | Kimbundu | - | - | - | - | - | |
kmr_Latn | Northern Kurdish | - | kmr | - | - | ku | | kurmanji, kurdish, ku, kur
knc_Arab | Central Kanuri (Arabic script) | kr | - | - | - | - | alt |
knc_Latn | Central Kanuri (Latin script) | kr | - | - | - | - | | kanuri, kau
kon_Latn | Kikongo | kg | - | - | - | - | | kongo
kor_Hang | Korean | ko | kor | - | - | ko | |
lao_Laoo | Lao | lo | lao | - | - | lo | |
lat_Latn | Latin | la | - | - | - | la | noflores |
lij_Latn | Ligurian | - | - | - | - | lij | |
lim_Latn | Limburgish | li | - | - | - | - | |
lin_Latn | Lingala | ln | - | - | - | ln | |
lit_Latn | Lithuanian | lt | lit | - | - | lt | |
lmo_Latn | Lombard | - | - | - | - | - | |
ltg_Latn | Latgalian | - | - | - | - | ltg | |
ltz_Latn | Luxembourgish | lb | ltz | - | - | lb | |
lua_Latn | Luba-Kasai | - | - | - | - | - | |
lug_Latn | Ganda | lg | - | - | - | lg | | luganda
luo_Latn | Luo | - | - | - | - | - | |
lus_Latn | Mizo | - | - | - | - | - | |
lvs_Latn | Standard Latvian | lv | lav | - | - | lv | | latvian
mag_Deva | Magahi | - | - | - | - | - | |
mai_Deva | Maithili | - | - | - | - | - | |
mal_Mlym | Malayalam | ml | mal | - | - | ml | |
mar_Deva | Marathi | mr | mar | - | - | mr | |
mey_Arab | Hassaniya Arabic | - | mey | - | - | - | noflores | hassaniya, hassaniyya
min_Arab | Minangkabau (Arabic script) | - | - | - | - | - | alt |
min_Latn | Minangkabau (Latin script) | - | - | - | - | - | | minangkabau
mkd_Cyrl | Macedonian | mk | mkd | - | - | mk | | mac
mlt_Latn | Maltese | mt | mlt | - | - | mt | |
mni_Beng | Meitei (Bengali script) | - | - | - | - | - | | meitei, manipuri
mos_Latn | Mossi | - | - | - | - | - | |
mri_Latn | Maori | mi | mri | - | - | - | | mao, māori
mya_Mymr | Burmese | my | mya | - | - | my | | myanmar, bur
nde_Latn | North Ndebele | nd | nde | - | - | - | noflores |
nld_Latn | Dutch | nl | nld | - | - | nl | | dut, flemish
nno_Latn | Norwegian Nynorsk | nn | nno | - | - | nn | | nynorsk, norwegian, no, nor
nob_Latn | Norwegian Bokmål | nb | nob | - | - | no | | bokmål, bokmal, norwegian, no, nor
npi_Deva | Nepali | ne | nep | - | - | ne | |
nqo_Nkoo | N'Ko | - | - | - | - | - | | nko
nso_Latn | Northern Sotho | - | nso | - | - | nso | | sepedi, pedi
nus_Latn | Nuer | - | - | - | - | - | |
nya_Latn | Nyanja | ny | nya | - | - | - | | chichewa, chewa
oci_Latn | Occitan | oc | - | - | - | oc | |
ory_Orya | Odia | or | - | - | - | or | | oriya
pag_Latn | Pangasinan | - | - | - | - | - | |
pan_Guru | Eastern Panjabi | pa | pan | - | - | pa | | punjabi, panjabi
pap_Latn | Papiamento | - | - | - | - | - | |
pbt_Arab | Southern Pashto | ps | pus | - | - | ps | | pashto, pushto
pcm_Latn | Nigerian Pidgin | - | - | - | - | pcm | noflores | naija
pes_Arab | Western Persian | fa | fas | - | - | fa | | persian, farsi, per
plt_Latn | Plateau Malagasy | mg | mlg | - | - | mg | | malagasy
pol_Latn | Polish | pl | pol | - | - | pl | |
por_Latn | Portuguese | pt | por | - | pt | pt | | por-BR
prs_Arab | Dari | - | prs | - | - | - | |
quy_Latn | Ayacucho Quechua | qu | - | qu | - | qu | | quechua, que
ron_Latn | Romanian | ro | ron | - | - | ro | | rum, moldavian
run_Latn | Rundi | rn | - | - | - | - | | kirundi
rus_Cyrl | Russian | ru | rus | - | ru | ru | |
sag_Latn | Sango | sg | - | - | - | - | |
san_Deva | Sanskrit | sa | - | - | - | sa | |
sat_Olck | Santali | - | - | - | - | - | |
scn_Latn | Sicilian | - | - | - | - | - | |
sdh_Arab | Southern Kurdish | - | - | - | - | sdh | noflores |
shi_Arab | Tachelhit | - | shi | - | - | - | noflores | shilha, tashelhit
shn_Mymr | Shan | - | - | - | - | - | |
sin_Sinh | Sinhala | si | sin | - | - | si | | sinhalese
slk_Latn | Slovak | sk | slk | - | - | sk | | slo
slv_Latn | Slovenian | sl | slv | - | - | sl | | slovene
sme_Latn | Northern Sami | se | - | - | - | se | noflores | sami
smo_Latn | Samoan | sm | smo | - | - | - | |
sna_Latn | Shona | sn | sna-Latn | - | - | sn | |
snd_Arab | Sindhi | sd | snd-Arab | - | - | - | |
som_Latn | Somali | so | som | - | - | so | |
sot_Latn | Southern Sotho | st | - | - | - | st | | sesotho
spa_Latn | Spanish | es | spa | - | - | es | | castilian, spa-MX
srd_Latn | Sardinian | sc | - | - | - | - | |
srp_Cyrl | Serbian (Cyrillic script) | sr | srp-Cyrl | - | - | sr | | serbian
srp_Latn | Serbian (Latin script) | sr | srp-Latn | - | - | sr | alt, noflores |
ssw_Latn | Swati | ss | ssw | - | - | - | | swazi, siswati
sun_Latn | Sundanese | su | - | - | - | - | |
swe_Latn | Swedish | sv | swe | - | - | sv | |
swh_Latn | Swahili | sw | swa | sw | - | sw | | kiswahili
szl_Latn | Silesian | - | - | - | - | - | |
tah_Latn | Tahitian | ty | tah | - | - | - | noflores |
tam_Taml | Tamil | ta | tam | ta | - | ta | |
taq_Latn | Tamasheq (Latin script) | - | - | - | - | - | | tamasheq, tmh
taq_Tfng | Tamasheq (Tifinagh script) | - | - | - | - | - | alt |
tat_Cyrl | Tatar | tt | tat | - | - | tt | |
tel_Telu | Telugu | te | tel | - | - | te | |
tgk_Cyrl | Tajik | tg | tgk-Cyrl | - | - | tg | |
tgl_Latn | Tagalog | tl | fil | - | - | tl | | filipino
tha_Thai | Thai | th | tha | th | - | th | |
tir_Ethi | Tigrinya | ti | tir | - | - | - | |
ton_Latn | Tongan | to | ton | - | - | - | noflores | tonga (tonga islands)
tpi_Latn | Tok Pisin | - | - | - | - | - | |
tsn_Latn | Tswana | tn | tsn | - | - | - | | setswana
tso_Latn | Tsonga | ts | - | - | - | - | |
tuk_Latn | Turkmen | tk | tuk | - | - | tk | |
tum_Latn | Tumbuka | - | - | - | - | - | |
tur_Latn | Turkish | tr | tur | tr | - | tr | |
twi_Latn | Twi | tw | - | - | - | - | |
tzm_Tfng | Central Atlas Tamazight | - | - | - | - | - | |
uig_Arab | Uyghur | ug | uig | - | - | ug | | uighur
ukr_Cyrl | Ukrainian | uk | ukr | - | - | uk | |
umb_Latn | Umbundu | - | - | - | - | - | |
urd_Arab | Urdu | ur | urd | - | - | ur | |
uzn_Latn | Northern Uzbek | uz | uzb | - | - | uz | | uzbek
uzs_Arab | Southern Uzbek | - | - | - | - | uzs | noflores |
vec_Latn | Venetian | - | - | - | - | vec | |
ven_Latn | Venda | ve | ven | - | - | - | noflores |
vie_Latn | Vietnamese | vi | vie | vi | - | vi | |
vol_Latn | Volapük | vo | - | - | - | vo | noflores | volapuk
war_Latn | Waray | - | - | - | - | - | |
wln_Latn | Walloon | wa | - | - | - | wa | noflores |
wol_Latn | Wolof | wo | wol | - | - | - | |
wuu_Hans | Wu Chinese | - | - | - | - | wuu | noflores | shanghainese
xho_Latn | Xhosa | xh | xho | - | - | xh | | isixhosa
ydd_Hebr | Eastern Yiddish | yi | - | - | - | - | | yiddish, yid
yor_Latn | Yoruba | yo | yor | - | - | yo | |
yue_Hant | Cantonese | - | yue | - | - | yue | |
zho_Hans | Chinese (Simplified) | zh | zho-CN | zh | zh | zh | | chinese, simplified chinese, zh-CN, zh-Hans, mandarin, cmn, chi
zho_Hant | Chinese (Traditional) | zh | zho-TW | - | - | zh | alt | traditional chinese, zh-TW, zh-Hant
zsm_Latn | Standard Malay | ms | msa | - | - | ms | | malay, may
zul_Latn | Zulu | zu | zul | - | - | zu | | isizulu
"""

# Notes shown in the docs table (and kept on Language.note).
_LANGUAGE_NOTES: dict[str, str] = {
    "arb_Arab": "BLEnD's Algeria (code `ar`, 'Algerian Arabic') maps here: its questions are Modern Standard Arabic.",
    "arq_Arab": "Algerian dialect; no FLORES-200, NTREX or py3langid data. BLEnD's Algeria resolves to arb_Arab.",
    "arb_Latn": "FLORES+ addition present in SIB-200.",
    "min_Arab": "FLORES+ addition present in SIB-200.",
    "nqo_Nkoo": "FLORES+ addition present in SIB-200.",
    "eng_Latn": "NTREX: the source file `src.eng`; eng-GB/-US/-IN references resolve here too.",
    "fra_Latn": "NTREX fra-CA resolves here.",
    "por_Latn": "NTREX por-BR resolves here.",
    "spa_Latn": "NTREX spa-MX resolves here.",
    "gsw_Latn": "NTREX has Zurich (gsw-ZH, used) and Bern (gsw-BE) German.",
    "quy_Latn": "XCOPA's `qu` maps here (the amplification paper pairs them).",
    "zsm_Latn": "macrolanguage `msa` (NTREX's Malay) maps here.",
    "swh_Latn": "macrolanguage `swa` (NTREX's Swahili) maps here.",
    "pes_Arab": "macrolanguage `fas` (NTREX's Persian) maps here.",
    "uzn_Latn": "macrolanguage `uzb` (NTREX's Uzbek) maps here.",
    "npi_Deva": "macrolanguage `nep` (NTREX's Nepali) maps here.",
    "tgl_Latn": "NTREX calls it Filipino (`fil`).",
    "kmr_Latn": "`ku`/`kur`/`kurdish` are ambiguous (also ckb_Arab); py3langid's `ku` is read as Kurmanji.",
    "nob_Latn": "`no`/`nor`/`norwegian` are ambiguous (also nno_Latn); py3langid's `no` is read as Bokmål.",
    "zho_Hans": "`zh`, `zho`, `chinese` mean Simplified Chinese; XCOPA and XWinograd `zh`, NTREX zho-CN.",
    "zho_Hant": "py3langid's `zh` does not tell the scripts apart.",
    "srp_Latn": "py3langid's `sr` covers both scripts.",
}

# ----------------------------------------------------------------------------------------------------------
# Culture groups: the 16 BLEnD countries/regions (file prefixes exactly).
#   key | display name | local language key(s) | BLEnD language code | BLEnD Source label | id code | aliases
# ----------------------------------------------------------------------------------------------------------

_COUNTRY_TABLE = """
Algeria | Algeria | arb_Arab | ar | Arabic (Algeria) | ar | DZ, DZA
Assam | Assam (India) | asm_Beng | as | Assamese (Assam) | as | IN-AS
Azerbaijan | Azerbaijan | azj_Latn | az | Azerbaijani (Azerbaijan) | az | AZ, AZE
China | China | zho_Hans | zh | Chinese (China) | ch | CN, CHN, PRC, People's Republic of China
Ethiopia | Ethiopia | amh_Ethi | am | Amharic (Ethiopia) | am | ET, ETH
Greece | Greece | ell_Grek | el | Greek (Greece) | gr | GR, GRC
Indonesia | Indonesia | ind_Latn | id | Indonesian (Indonesia) | in | ID, IDN
Iran | Iran | pes_Arab | fa | Persian (Iran) | pe | IR, IRN
Mexico | Mexico | spa_Latn | es | Spanish (Mexico) | spme | MX, MEX
North_Korea | North Korea | kor_Hang | ko | - | - | KP, PRK, DPRK, Korea, Democratic People's Republic of Korea
Northern_Nigeria | Northern Nigeria | hau_Latn | ha | Hausa (Northern Nigeria) | ha |
South_Korea | South Korea | kor_Hang | ko | Korean (South Korea) | ko | KR, KOR, ROK, Korea, Republic of Korea
Spain | Spain | spa_Latn | es | Spanish (Spain) | sp | ES, ESP
UK | United Kingdom | eng_Latn | en | English (UK) | en | GB, GBR, Great Britain, Britain, U.K.
US | United States | eng_Latn | en | English (US) | en | USA, United States of America, America, U.S., U.S.A.
West_Java | West Java (Indonesia) | sun_Latn | su | Sundanese (West Java) | su | Jawa Barat, ID-JB
"""

_COUNTRY_NOTES: dict[str, str] = {
    "Algeria": "BLEnD's language is 'Algerian Arabic' (`ar`); the question text is Modern Standard Arabic, "
               "so the local language is arb_Arab (arq_Arab exists for dialect-specific use).",
    "North_Korea": "No questions are attributed to it; BLEnD's 'Korean (Korea)' source (10 ids) does not say "
                   "which Korea and is left unassigned.",
    "Assam": "A region of India.",
    "West_Java": "A region of Indonesia; its language is Sundanese.",
    "Northern_Nigeria": "A region of Nigeria; its language is Hausa.",
}


def _none(cell: str) -> str | None:
    cell = cell.strip()
    return None if cell in ("", "-") else cell


def _split(cell: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in cell.split(",") if part.strip())


def _parse_languages(table: str) -> list[Language]:
    out = []
    for lineno, line in enumerate(table.strip().splitlines(), 1):
        cells = [c.strip() for c in line.split("|")]
        if len(cells) != 9:
            raise NeurospecError(f"language table row {lineno} has {len(cells)} cells, expected 9: {line!r}")
        key, name, iso1, ntrex, xcopa, xwino, langid, flags, aliases = cells
        flag_set = set(_split(flags))
        unknown_flags = flag_set - {"alt", "noflores"}
        if unknown_flags:
            raise NeurospecError(f"language table row {key}: unknown flags {sorted(unknown_flags)}")
        out.append(Language(
            key=key, name=name, iso639_1=_none(iso1), iso639_3=key[:3], script=key[4:],
            flores200=None if "noflores" in flag_set else key, ntrex=_none(ntrex), xcopa=_none(xcopa),
            xwinograd=_none(xwino), langid=_none(langid), aliases=_split(aliases),
            default="alt" not in flag_set, note=_LANGUAGE_NOTES.get(key, ""),
        ))
    return out


def _parse_countries(table: str) -> list[Country]:
    out = []
    for lineno, line in enumerate(table.strip().splitlines(), 1):
        cells = [c.strip() for c in line.split("|")]
        if len(cells) != 7:
            raise NeurospecError(f"country table row {lineno} has {len(cells)} cells, expected 7: {line!r}")
        key, name, langs, blend_lang, source, id_code, aliases = cells
        out.append(Country(key=key, name=name, language_keys=_split(langs), blend_language=blend_lang,
                           blend_source=_none(source), blend_id_code=_none(id_code), aliases=_split(aliases),
                           note=_COUNTRY_NOTES.get(key, "")))
    return out


# ----------------------------------------------------------------------------------------------------------
# Registry and lookup
# ----------------------------------------------------------------------------------------------------------

def _norm(name: str) -> str:
    """Lookup form of a name: case-folded, trimmed, inner whitespace collapsed, '-' read as '_'."""
    return " ".join(name.casefold().replace("-", "_").split())


def _norm_country(name: str) -> str:
    """Lookup form of a group name: case-folded; '_', '-', '.' and whitespace runs read as one space."""
    return " ".join(re.sub(r"[_\-.]+", " ", name.casefold()).split())


_ADD_HINT = (
    "To add a language: neurospec.data.languages.register_language(Language(key='xxx_Latn', name='...', "
    "iso639_1=None, iso639_3='xxx', script='Latn', flores200=..., ntrex=..., langid=..., aliases=(...)))."
)

_LANGUAGES: dict[str, Language] = {}
_INDEX: dict[str, tuple[str, ...]] = {}       # normalised name -> keys of every language that has it
_LANGID_INDEX: dict[str, tuple[str, ...]] = {}
_COUNTRIES: dict[str, Country] = {}
_COUNTRY_INDEX: dict[str, tuple[str, ...]] = {}

#: py3langid labels that name no language: ``zxx`` (no linguistic content), ``und`` (below min_confidence).
LANGID_NO_LANGUAGE = frozenset({"zxx", "und"})


def _build_index(languages: Iterable[Language]) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    index: dict[str, list[str]] = {}
    langid: dict[str, list[str]] = {}
    for lang in languages:
        for code in lang.codes:
            keys = index.setdefault(_norm(code), [])
            if lang.key not in keys:
                keys.append(lang.key)
        if lang.langid:
            langid.setdefault(lang.langid, []).append(lang.key)
    return ({k: tuple(v) for k, v in index.items()}, {k: tuple(v) for k, v in langid.items()})


def _pick(keys: tuple[str, ...], languages: dict[str, Language]) -> tuple[str, ...]:
    """The default rule: a name shared by several entries goes to the entries marked default, if one."""
    if len(keys) <= 1:
        return keys
    defaults = tuple(k for k in keys if languages[k].default)
    return defaults if len(defaults) == 1 else keys


def _describe(lang: Language) -> str:
    return f"{lang.key} ({lang.name})"


def _suggest(query: str, index: dict[str, tuple[str, ...]], n: int = 6) -> list[tuple[str, str]]:
    """(matched name, key) pairs for the names closest to ``query``, best first, one per key."""
    matches = difflib.get_close_matches(query, list(index), n=40, cutoff=0.6)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in matches:
        for key in index[name]:
            if key not in seen:
                seen.add(key)
                out.append((name, key))
    return out[:n]


def _spelling(normalised: str, codes: Iterable[str], norm) -> str:
    """The name as the table spells it (``zho_Hant``, not ``zho_hant``)."""
    return next((code for code in codes if norm(code) == normalised), normalised)


LanguageLike = Union[str, Language]


def resolve(code_or_name: LanguageLike) -> Language:
    """``resolve("jp")`` -> the Japanese ``Language``; any code or name in the registry, case-insensitive.

    Accepts FLORES-200 codes (``zho_Hans``), ISO 639-1/639-3 (``zh``, ``zho``), NTREX codes (``zho-CN``),
    XCOPA/XWinograd codes (``jp``), English names and aliases (``Chinese``), or a ``Language`` (returned
    as registered). Raises ``UnknownLanguageError`` (with the closest matches) or ``AmbiguousLanguageError``
    (with the candidates); both are ``NeurospecError`` and ``KeyError``.
    """
    if isinstance(code_or_name, Language):
        registered = _LANGUAGES.get(code_or_name.key)
        if registered is None:
            raise UnknownLanguageError(
                f"Language {code_or_name.key!r} is not registered. {_ADD_HINT}", code_or_name.key)
        return registered
    if not isinstance(code_or_name, str):
        raise NeurospecError(
            f"resolve() takes a language code or name (str) or a Language, got {type(code_or_name).__name__} "
            f"{code_or_name!r}.")
    query = _norm(code_or_name)
    if not query:
        raise UnknownLanguageError("Empty language name: give a code such as 'en', 'zho_Hans' or 'jp'.", code_or_name)
    keys = _pick(_INDEX.get(query, ()), _LANGUAGES)
    if len(keys) == 1:
        return _LANGUAGES[keys[0]]
    if keys:
        listed = ", ".join(_describe(_LANGUAGES[k]) for k in keys)
        raise AmbiguousLanguageError(
            f"Language {code_or_name!r} is ambiguous: it names {listed}. Use one of those codes.",
            code_or_name, tuple(_LANGUAGES[k] for k in keys))
    suggestions = _suggest(query, _INDEX)
    if suggestions:
        listed = "; ".join(f"{k} ({_LANGUAGES[k].name}, via {_spelling(name, _LANGUAGES[k].codes, _norm)!r})"
                           for name, k in suggestions)
        near = f"Closest matches: {listed}."
    else:
        near = "No close match."
    raise UnknownLanguageError(
        f"Unknown language {code_or_name!r}. {near} Name a language by FLORES-200 code ('zho_Hans'), "
        f"ISO 639-1/-3 ('zh', 'zho'), NTREX ('zho-CN'), XCOPA/XWinograd ('jp') code or English name; "
        f"all_languages() lists them, docs/languages.md tabulates them. {_ADD_HINT}",
        code_or_name, tuple(_LANGUAGES[k] for _, k in suggestions))


def language_of(name: str) -> str | None:
    """``language_of("fr")`` -> ``'fra_Latn'``; None when ``name`` is no language (a country, a group label)."""
    try:
        return resolve(name).key
    except NeurospecError:
        return None


def resolve_many(codes: str | Iterable[LanguageLike]) -> tuple[Language, ...]:
    """``resolve_many("en,zh,fr")`` -> three Languages, in order.

    Takes a comma- or whitespace-separated string, or an iterable of codes/names/Languages. A language
    named twice (``"zh,zho_Hans"``) is an error, as is an empty list.
    """
    if isinstance(codes, str):
        items: list[LanguageLike] = [part for part in re.split(r"[,\s]+", codes) if part]
    elif isinstance(codes, Iterable):
        items = list(codes)
    else:
        raise NeurospecError(f"resolve_many() takes a string like 'en,zh,fr' or a list of codes, got {codes!r}.")
    if not items:
        raise NeurospecError(f"No languages given ({codes!r}); pass e.g. 'en,zh,fr'.")
    out = [resolve(item) for item in items]
    seen: dict[str, LanguageLike] = {}
    for item, lang in zip(items, out):
        if lang.key in seen:
            raise NeurospecError(
                f"Language {lang.key} is named twice in {codes!r} (as {seen[lang.key]!r} and {item!r}); "
                f"name each language once.")
        seen[lang.key] = item
    return tuple(out)


def ambiguous_names() -> dict[str, tuple[str, ...]]:
    """``ambiguous_names()["no"]`` -> ``('nno_Latn', 'nob_Latn')``: every name that resolves to no single language."""
    return {name: keys for name, keys in sorted(_INDEX.items()) if len(_pick(keys, _LANGUAGES)) > 1}


def all_languages() -> tuple[Language, ...]:
    """Every registered language, sorted by key."""
    return tuple(_LANGUAGES[k] for k in sorted(_LANGUAGES))


def register_language(language: Language, *, replace: bool = False) -> Language:
    """``register_language(Language(key="xyz_Latn", name="Xyz", iso639_1=None, iso639_3="xyz", script="Latn"))``.

    Adds (or, with ``replace=True``, replaces) a language. Refused, with the conflicts listed, if any of
    its names would change what an existing name resolves to (a name another default entry already
    has); mark a script variant ``default=False`` so shared names keep resolving to the existing entry,
    or give it only its own names. Returns the registered record.
    """
    global _INDEX, _LANGID_INDEX
    if not isinstance(language, Language):
        raise NeurospecError(f"register_language() takes a Language, got {type(language).__name__}.")
    if language.key in _LANGUAGES and not replace:
        raise NeurospecError(
            f"Language {language.key!r} is already registered ({_LANGUAGES[language.key].name}); "
            f"pass replace=True to replace it.")
    candidate = dict(_LANGUAGES)
    candidate[language.key] = language
    index, langid_index = _build_index(candidate.values())
    conflicts = []
    for code in language.codes:
        name = _norm(code)
        before = _pick(_INDEX.get(name, ()), _LANGUAGES)
        after = _pick(index.get(name, ()), candidate)
        before_set = set(before) - {language.key}
        if before_set and set(after) != set(before):
            conflicts.append(f"{code!r} (now {', '.join(before)}; would be {', '.join(after)})")
    if language.langid:
        before = _pick(_LANGID_INDEX.get(language.langid, ()), _LANGUAGES)
        after = _pick(langid_index.get(language.langid, ()), candidate)
        if set(before) - {language.key} and set(after) != set(before):
            conflicts.append(f"py3langid label {language.langid!r} (now {', '.join(before)})")
    if conflicts:
        raise NeurospecError(
            f"Registering {language.key} would change what these names resolve to: {'; '.join(conflicts)}. "
            f"Drop those names from the record, or set default=False if it is a variant of an existing entry.")
    _LANGUAGES[language.key] = language
    _INDEX, _LANGID_INDEX = index, langid_index
    return language


# ----------------------------------------------------------------------------------------------------------
# py3langid labels
# ----------------------------------------------------------------------------------------------------------

def langid_label(language: LanguageLike) -> str | None:
    """``langid_label("ht")`` -> ``'ht'``: the py3langid label for the language, None if py3langid lacks it."""
    return resolve(language).langid


def from_langid_label(label: str) -> Language | None:
    """``from_langid_label("ja")`` -> Japanese: the language a py3langid output label stands for.

    ``zxx`` (no linguistic content) and ``und`` (below a min_confidence) give None. A label several
    entries share goes to the default one (``zh`` -> ``zho_Hans``, ``sr`` -> ``srp_Cyrl``). Unknown
    labels raise ``UnknownLanguageError``.
    """
    if not isinstance(label, str):
        raise NeurospecError(f"from_langid_label() takes a py3langid label (str), got {label!r}.")
    if label in LANGID_NO_LANGUAGE:
        return None
    keys = _pick(_LANGID_INDEX.get(label, ()), _LANGUAGES)
    if len(keys) == 1:
        return _LANGUAGES[keys[0]]
    if keys:
        raise AmbiguousLanguageError(
            f"py3langid label {label!r} is given to {', '.join(keys)} and none is the default; "
            f"set default=False on all but one.", label, tuple(_LANGUAGES[k] for k in keys))
    near = difflib.get_close_matches(label, list(_LANGID_INDEX), n=5, cutoff=0.5)
    hint = f" Closest labels: {', '.join(near)}." if near else ""
    raise UnknownLanguageError(
        f"No registered language has the py3langid label {label!r}.{hint} Register one with "
        f"langid={label!r}. {_ADD_HINT}", label, tuple(_LANGUAGES[_LANGID_INDEX[n][0]] for n in near))


@lru_cache(maxsize=1)
def installed_langid_labels() -> frozenset[str]:
    """``installed_langid_labels()`` -> the label set of the installed py3langid model (read, not assumed).

    py3langid 0.4 ships a 140-label model (``LanguageIdentifier.from_model_file``); 0.3 shipped 97 labels
    (``from_pickled_model``) without e.g. ``ha``, ``ig``, ``yo``, ``so``, ``uz``, ``om``: the registry's
    labels are those of 0.4, which pyproject requires.
    """
    from neurospec.util.extras import require

    _langid = require("py3langid.langid", "language identification")
    cls = _langid.LanguageIdentifier
    if hasattr(cls, "from_model_file"):
        identifier = cls.from_model_file(_langid.MODEL_FILE)
    else:  # py3langid 0.3
        identifier = cls.from_pickled_model(_langid.MODEL_FILE)
    return frozenset(identifier.nb_classes)


# ----------------------------------------------------------------------------------------------------------
# Countries
# ----------------------------------------------------------------------------------------------------------

def _build_country_index(countries: Iterable[Country]) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for country in countries:
        for code in country.codes:
            keys = index.setdefault(_norm_country(code), [])
            if country.key not in keys:
                keys.append(country.key)
    return {k: tuple(v) for k, v in index.items()}


def resolve_country(name: str | Country) -> Country:
    """``resolve_country("USA")`` -> the ``US`` group; BLEnD prefix, display name, ISO 3166 code or alias.

    Case-insensitive; ``_``, ``-``, ``.`` and spaces are interchangeable (``north korea`` = ``North_Korea``).
    ``Korea`` is ambiguous and raises ``AmbiguousCountryError`` listing both; an unknown name raises
    ``UnknownCountryError`` with the closest matches.
    """
    if isinstance(name, Country):
        if name.key not in _COUNTRIES:
            raise UnknownCountryError(f"Country {name.key!r} is not registered.", name.key)
        return _COUNTRIES[name.key]
    if not isinstance(name, str):
        raise NeurospecError(f"resolve_country() takes a name (str) or a Country, got {name!r}.")
    query = _norm_country(name)
    keys = _COUNTRY_INDEX.get(query, ())
    if len(keys) == 1:
        return _COUNTRIES[keys[0]]
    if keys:
        listed = ", ".join(f"{k} ({_COUNTRIES[k].name})" for k in keys)
        raise AmbiguousCountryError(
            f"Country {name!r} is ambiguous: it names {listed}. Use one of those names.",
            name, tuple(_COUNTRIES[k] for k in keys))
    suggestions = _suggest(query, _COUNTRY_INDEX)
    listed = "; ".join(f"{k} ({_COUNTRIES[k].name}, via {_spelling(n, _COUNTRIES[k].codes, _norm_country)!r})"
                       for n, k in suggestions)
    near = f"Closest matches: {listed}." if suggestions else "No close match."
    raise UnknownCountryError(
        f"Unknown country or region {name!r}. {near} The culture groups are BLEnD's 16: "
        f"{', '.join(sorted(_COUNTRIES))}.", name, tuple(_COUNTRIES[k] for _, k in suggestions))


def all_countries() -> tuple[Country, ...]:
    """The 16 BLEnD countries/regions, in BLEnD's (alphabetical file) order."""
    return tuple(_COUNTRIES[k] for k in sorted(_COUNTRIES))


# ----------------------------------------------------------------------------------------------------------
# Docs tables (docs/languages.md embeds these; a test checks they are current)
# ----------------------------------------------------------------------------------------------------------

def _cell(value: str | None) -> str:
    return f"`{value}`" if value else ""


def languages_markdown() -> str:
    """The registry as a Markdown table (one row per language), as docs/languages.md shows it."""
    rows = ["| key | name | ISO 639-1 | ISO 639-3 | NTREX | XCOPA | XWinograd | py3langid | other names | note |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for lang in all_languages():
        key = f"`{lang.key}`" + ("" if lang.flores200 else " (not FLORES-200)") + ("" if lang.default else " (variant)")
        others = ", ".join(f"`{a}`" for a in lang.aliases)
        rows.append(f"| {key} | {lang.name} | {_cell(lang.iso639_1)} | {_cell(lang.iso639_3)} | {_cell(lang.ntrex)} "
                    f"| {_cell(lang.xcopa)} | {_cell(lang.xwinograd)} | {_cell(lang.langid)} | {others} "
                    f"| {lang.note} |")
    return "\n".join(rows)


def countries_markdown() -> str:
    """The culture groups as a Markdown table, as docs/languages.md shows it."""
    rows = ["| key (BLEnD prefix) | name | local language | BLEnD code | BLEnD Source | id code | other names | note |",
            "|---|---|---|---|---|---|---|---|"]
    for c in all_countries():
        langs = ", ".join(f"`{k}`" for k in c.language_keys)
        others = ", ".join(f"`{a}`" for a in c.aliases)
        rows.append(f"| `{c.key}` | {c.name} | {langs} | `{c.blend_language}` | {c.blend_source or ''} "
                    f"| {_cell(c.blend_id_code)} | {others} | {c.note} |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------------------------------------
# Load the tables
# ----------------------------------------------------------------------------------------------------------

def _load() -> None:
    global _INDEX, _LANGID_INDEX, _COUNTRY_INDEX
    for lang in _parse_languages(_LANGUAGE_TABLE):
        if lang.key in _LANGUAGES:
            raise NeurospecError(f"language table: {lang.key} appears twice")
        _LANGUAGES[lang.key] = lang
    _INDEX, _LANGID_INDEX = _build_index(_LANGUAGES.values())
    for country in _parse_countries(_COUNTRY_TABLE):
        _COUNTRIES[country.key] = country
    _COUNTRY_INDEX = _build_country_index(_COUNTRIES.values())


_load()

#: The seven languages of the LAPE reference files, in their order (en, zh, fr, es, vi, id, ja).
LAPE_ORDER: tuple[Language, ...] = resolve_many("en,zh,fr,es,vi,id,ja")

#: The 18 languages of the amplification paper (Rahmanisa et al., 2025), in its order.
AMPLIFICATION_LANGUAGES: tuple[Language, ...] = resolve_many(
    "eng_Latn nld_Latn ind_Latn zsm_Latn vie_Latn jpn_Jpan zho_Hans fra_Latn por_Latn rus_Cyrl "
    "est_Latn hat_Latn ita_Latn quy_Latn swh_Latn tam_Taml tha_Thai tur_Latn")

#: The 8 countries with culture-specific neuron sets in Yamamoto et al. (METHODS section 3).
CULTURE_SPECIFIC_COUNTRIES: tuple[Country, ...] = tuple(
    resolve_country(k) for k in ("China", "Indonesia", "Iran", "Mexico", "South_Korea", "Spain", "UK", "US"))


