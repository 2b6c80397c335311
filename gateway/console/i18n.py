"""The console's languages, English (the default) and French: each request's language (the
`?lang=` switch, else the `rayon_lang` cookie, else the browser's Accept-Language), the
gettext catalogs of `locale/` (Babel), the callables the templates' `{% trans %}` and `_()`
use, and dates and numbers written the locale's way in the store's time zone.

Messages in Python are marked `tr(request, "… %(name)s …", name=value)` so that `pybabel
extract -k tr:2` finds them (docs/console.md, "Translations").
"""

from __future__ import annotations

import gettext as gettext_module
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, get_day_names
from babel.dates import format_datetime as babel_datetime
from babel.numbers import format_decimal
from babel.support import Translations
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "console"
DEFAULT = "en"
LANGUAGES = ("en", "fr")
LANG_COOKIE = "rayon_lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
ENGLISH_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# English keeps the console's ISO-like dates; French writes them the French way.
_DATETIME = {"en": "yyyy-MM-dd HH:mm:ss", "fr": "d MMM y HH:mm:ss"}
_SHORT = {"en": "EEE yyyy-MM-dd HH:mm", "fr": "EEE d MMM y HH:mm"}
_DATE = {"en": "yyyy-MM-dd", "fr": "d MMMM y"}


@dataclass(frozen=True, slots=True)
class Language:
    """One language's catalog and formats."""

    code: str
    translations: gettext_module.NullTranslations

    def gettext(self, message: str, **values: object) -> str:
        """`message` translated, its `%(name)s` placeholders filled from `values`."""
        text = self.translations.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        """The form of `singular`/`plural` for `n`, placeholders filled (`num` is `n`)."""
        text = self.translations.ngettext(singular, plural, n)
        return text % {"num": n, **values}

    def when(self, at: float | None, tz: ZoneInfo) -> str:
        """Epoch seconds as the store's local date and time, or an em dash."""
        if at is None:
            return "—"
        moment = datetime.fromtimestamp(at, tz)
        return babel_datetime(moment, _DATETIME[self.code], tzinfo=tz, locale=self.code)

    def short(self, moment: datetime) -> str:
        """A local time with its weekday, to the minute (`Tue 2026-03-03 14:00`)."""
        return babel_datetime(moment, _SHORT[self.code], tzinfo=moment.tzinfo, locale=self.code)

    def day(self, day: date) -> str:
        """A day (`2026-03-03`, `3 mars 2026`)."""
        return format_date(day, _DATE[self.code], locale=self.code)

    def weekday(self, index: int) -> str:
        """A weekday (0 is Monday) as rule files write it in English (`mon`), abbreviated the
        locale's way otherwise (`lun.`)."""
        if self.code == "en":
            return ENGLISH_WEEKDAYS[index]
        return str(get_day_names("abbreviated", locale=self.code)[index])

    def number(self, value: float) -> str:
        """A number with the locale's separators."""
        return format_decimal(value, locale=self.code)

    def template_callables(self) -> dict[str, Callable[..., Any]]:
        """What `jinja2.ext.i18n` (old-style: the template fills placeholders) and the
        templates call."""
        t = self.translations
        return {"gettext": t.gettext, "ngettext": t.ngettext, "_": t.gettext}


def value_words(t: Language) -> dict[str, dict[str, str]]:
    """The words for the values pages show (the values themselves stay in data- attributes
    and the live messages): offer states, zone event kinds, rule states and purposes, roles."""
    return {
        "offer": {
            "pending": t.gettext("pending"),
            "sent": t.gettext("sent"),
            "delivered": t.gettext("delivered"),
            "expired": t.gettext("expired"),
            "holdout": t.gettext("holdout"),
            "cancelled": t.gettext("cancelled"),
            "dropped": t.gettext("dropped"),
        },
        "kind": {
            "enter": t.gettext("enter"),
            "exit": t.gettext("exit"),
            "dwell": t.gettext("dwell"),
            "visit_start": t.gettext("visit start"),
            "visit_end": t.gettext("visit end"),
        },
        "rule": {
            "active": t.gettext("active"),
            "scheduled": t.gettext("scheduled"),
            "ended": t.gettext("ended"),
        },
        "purpose": {
            "commercial": t.gettext("commercial"),
            "transactional": t.gettext("transactional"),
        },
        "role": {
            "viewer": t.gettext("viewer"),
            "marketer": t.gettext("marketer"),
            "ops": t.gettext("ops"),
        },
    }


def english() -> Language:
    """English: the messages as written, no catalog needed."""
    return Language("en", gettext_module.NullTranslations())


def load_languages(folder: Path = LOCALE_DIR) -> dict[str, Language]:
    """Every language of LANGUAGES with its compiled catalog (`<code>/LC_MESSAGES/console.mo`);
    English without one."""
    found = {"en": english()}
    for code in LANGUAGES:
        if code != "en":
            catalog = Translations.load(str(folder), [code], DOMAIN)
            found[code] = Language(code, catalog)
    return found


def negotiate(header: str | None) -> str:
    """The first language of LANGUAGES the Accept-Language header asks for (by weight,
    then order), else DEFAULT."""
    ranked: list[tuple[float, int, str]] = []
    for i, item in enumerate((header or "").split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        code = tag.split("-")[0].strip().lower()
        if code in LANGUAGES and weight > 0:
            ranked.append((-weight, i, code))
    return min(ranked)[2] if ranked else DEFAULT


def chosen(query: Mapping[str, str], cookies: Mapping[str, str], accept: str | None) -> str:
    """The language of a request: `?lang=`, else the cookie, else Accept-Language; only
    values of LANGUAGES count."""
    for asked in (query.get("lang"), cookies.get(LANG_COOKIE)):
        if asked in LANGUAGES:
            return str(asked)
    return negotiate(accept)


def language_of(request: Request) -> Language:
    """The request's Language (the app's catalogs, `app.state.languages`)."""
    languages: dict[str, Language] = request.app.state.languages
    code = chosen(request.query_params, request.cookies, request.headers.get("accept-language"))
    return languages[code]


def tr(request: Request, message: str, **values: object) -> str:
    """`message` in the request's language, `%(name)s` placeholders filled from `values`."""
    return language_of(request).gettext(message, **values)


def switch_links(request: Request) -> list[tuple[str, str, str]]:
    """The header's language switch: (code, name, this page's URL with `?lang=code`)."""
    names = {"en": "English", "fr": "Français"}
    links = []
    for code in LANGUAGES:
        url = request.url.include_query_params(lang=code)
        links.append((code, names[code], f"{url.path}?{url.query}"))
    return links


class LanguageSwitch:
    """Remembers `?lang=fr|en` in the `rayon_lang` cookie (SameSite=Strict; any other value
    is ignored). It changes no server state, so it needs no CSRF token."""

    def __init__(self, app: ASGIApp, secure: bool = True) -> None:
        self.app, self.secure = app, secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        code = Request(scope).query_params.get("lang") if scope["type"] == "http" else None
        if code not in LANGUAGES:
            await self.app(scope, receive, send)
            return
        cookie = f"{LANG_COOKIE}={code}; Path=/; Max-Age={LANG_COOKIE_MAX_AGE}; SameSite=Strict"
        cookie += "; Secure" if self.secure else ""

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)
