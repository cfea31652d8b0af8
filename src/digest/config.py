"""Settings: `digest.toml` + `DIGEST_<SECTION>__<KEY>` environment overrides.

Every setting is declared once, with its type, default and help text, in `digest.config_sections`;
docs/configuration.md is checked against these declarations by the tests.
Lookup order for the file: `--config PATH`, then `$DIGEST_CONFIG`, then
`./digest.toml`. Relative paths in the file are relative to the file.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# The sections live in their own module; callers import them from here.
from digest.config_sections import (  # noqa: F401
    AudienceSettings,
    BounceSettings,
    DatabaseSettings,
    DispatchSettings,
    DkimSettings,
    DomainLimit,
    GatherSettings,
    GroupSettings,
    ListConfig,
    ScheduleSettings,
    SmtpSettings,
    SourceConfig,
    TemplateSettings,
    WebSettings,
    _Section,
)
from digest.errors import ConfigError

log = logging.getLogger(__name__)

CONFIG_FILENAME = "digest.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DIGEST_", env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    database: DatabaseSettings = DatabaseSettings()
    web: WebSettings = WebSettings()
    smtp: SmtpSettings = SmtpSettings()
    dispatch: DispatchSettings = DispatchSettings()
    dkim: DkimSettings | None = None
    bounces: BounceSettings | None = None
    gather: GatherSettings = GatherSettings()
    group: GroupSettings = GroupSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    templates: TemplateSettings = TemplateSettings()
    audience: AudienceSettings = AudienceSettings()
    sources: list[SourceConfig] = Field(default_factory=list)
    lists: list[ListConfig] = Field(default_factory=list)

    # Where the settings came from; not TOML keys.
    config_path: Path | None = Field(None, exclude=True)
    file_lists: dict[str, str] = Field(default_factory=dict, exclude=True)  # slug -> the audience.folder file defining it
    file_list_problems: list[tuple[str, str]] = Field(default_factory=list, exclude=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):  # type: ignore[no-untyped-def,override]
        # Environment beats the file; both beat defaults.
        return (env_settings, init_settings)

    @property
    def base_dir(self) -> Path:
        return self.config_path.parent if self.config_path else Path.cwd()

    def secret_key(self) -> bytes:
        """The HMAC key; a clear ConfigError when none is configured."""
        if self.web.secret_key is not None and self.web.secret_key.get_secret_value():
            return self.web.secret_key.get_secret_value().encode()
        if self.web.secret_key_file is not None:
            try:
                key = self.web.secret_key_file.read_text().strip()
            except OSError as exc:
                raise ConfigError("web.secret_key_file", f"cannot read {self.web.secret_key_file}: {exc.strerror}",
                                  "point it at a readable file, or run `digest init` to write one") from None
            if len(key) < 16:
                raise ConfigError("web.secret_key_file", "key is shorter than 16 characters",
                                  "write at least 32 random characters, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
            return key.encode()
        raise ConfigError("web.secret_key", "no secret key is set",
                          "set DIGEST_WEB__SECRET_KEY or web.secret_key_file (`digest init` writes one)")

    def smtp_password(self) -> str | None:
        if self.smtp.password is not None:
            return self.smtp.password.get_secret_value()
        if self.smtp.password_file is not None:
            try:
                return self.smtp.password_file.read_text().strip()
            except OSError as exc:
                raise ConfigError("smtp.password_file", f"cannot read it: {exc.strerror}", "point it at a readable file") from None
        return None

    def get_list(self, slug: str) -> ListConfig:
        for mailing_list in self.lists:
            if mailing_list.slug == slug:
                return mailing_list
        known = ", ".join(item.slug for item in self.lists) or "none configured"
        raise ConfigError(f"lists.{slug}", "no such list", f"use one of: {known}, or add a [[lists]] entry")


def find_config_file(explicit: str | Path | None = None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError("--config", f"{path} does not exist", "pass the path of a digest.toml, or run `digest init DIR`")
        return path.resolve()
    env = os.environ.get("DIGEST_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError("DIGEST_CONFIG", f"{path} does not exist", "point DIGEST_CONFIG at a digest.toml")
        return path.resolve()
    local = Path.cwd() / CONFIG_FILENAME
    return local.resolve() if local.is_file() else None


def load_settings(explicit: str | Path | None = None, *, require_file: bool = False) -> Settings:
    """Read the config file (if any) and the environment; raise ConfigError on any problem."""
    path = find_config_file(explicit)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}", "fix the syntax at that line") from None
    elif require_file:
        raise ConfigError(CONFIG_FILENAME, "no config file found", "run `digest init DIR`, pass --config, or set DIGEST_CONFIG")
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise _config_error(exc) from None
    settings.config_path = path
    _resolve_paths(settings)
    _check_unique(settings)
    _add_file_lists(settings)
    return settings


def _add_file_lists(settings: Settings) -> None:
    # A broken list file is reported (and skipped), never a reason for every other list to stop.
    folder = settings.audience.folder
    if not folder.is_dir():
        return
    extra, problems = load_list_files(folder, settings.lists)
    settings.lists = [*settings.lists, *(conf for conf, _ in extra)]
    settings.file_lists = {conf.slug: name for conf, name in extra}
    settings.file_list_problems = problems
    for name, problem in problems:
        log.warning("%s: %s", folder / name, problem)


def load_list_files(folder: Path, configured: list[ListConfig]) -> tuple[list[tuple[ListConfig, str]], list[tuple[str, str]]]:
    """List definitions from folder/*.toml (with their file names), minus slugs already in `configured`; per-file problems."""
    known = {c.slug for c in configured}
    found: list[tuple[ListConfig, str]] = []
    problems: list[tuple[str, str]] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append((path.name, f"not valid TOML: {exc}"))
            continue
        entries: list[Any] = data["lists"] if isinstance(data.get("lists"), list) else [{"slug": path.stem, **data}]
        for entry in entries:
            try:
                conf = ListConfig(**entry)
            except (ValidationError, TypeError) as exc:
                problems.append((path.name, _first_problem(exc)))
                continue
            if conf.slug in known:
                problems.append((path.name, f"list {conf.slug!r} is also defined in digest.toml, which wins"))
                continue
            known.add(conf.slug)
            found.append((conf, path.name))
    return found, problems


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc']) or 'entry'}: {error['msg']}"
    return str(exc)


def _resolve_paths(settings: Settings) -> None:
    base = settings.base_dir

    def resolve(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else base / p)

    settings.web.secret_key_file = resolve(settings.web.secret_key_file)
    settings.smtp.password_file = resolve(settings.smtp.password_file)
    settings.templates.dir = resolve(settings.templates.dir)
    settings.audience.folder = resolve(settings.audience.folder) or settings.audience.folder
    if settings.dkim is not None:
        settings.dkim.private_key_file = resolve(settings.dkim.private_key_file)  # type: ignore[assignment]
        settings.dkim.ed25519_key_file = resolve(settings.dkim.ed25519_key_file)
    url = settings.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:" and not url.startswith("sqlite:////"):
        settings.database.url = prefix + str(base / url[len(prefix):])
    for source in settings.sources:
        if "://" not in source.url and not Path(source.url).is_absolute():
            source.url = str(base / source.url)


def _check_unique(settings: Settings) -> None:
    for section, attr in (("lists", "slug"), ("sources", "name")):
        seen: set[str] = set()
        for index, item in enumerate(getattr(settings, section)):
            value = getattr(item, attr)
            if value in seen:
                raise ConfigError(f"{section}[{index}].{attr}", f"{value!r} is used twice", f"give each entry its own {attr}")
            seen.add(value)


_FIX_BY_TYPE = {
    "missing": "add this key",
    "int_parsing": "use a whole number",
    "float_parsing": "use a number",
    "bool_parsing": "use true or false",
    "literal_error": "use one of the values listed",
    "string_pattern_mismatch": "use lower-case letters, digits, '-' or '_'",
}


def _config_error(exc: ValidationError) -> ConfigError:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    key = ".".join(p if not p.isdigit() else f"[{p}]" for p in loc).replace(".[", "[")
    problem = error["msg"].removeprefix("Value error, ")
    kind = error["type"]
    fix = _FIX_BY_TYPE.get(kind, "")
    if kind == "extra_forbidden":
        problem = "unknown key"
        fix = "remove it or check its spelling"
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        if close:
            fix = f"did you mean '{close[0]}'?"
    if len(exc.errors()) > 1:
        problem += f" (and {len(exc.errors()) - 1} more problem(s))"
    return ConfigError(key or "(top level)", problem, fix)


def _known_keys(parent: list[str]) -> list[str]:
    model: Any = Settings
    for part in parent:
        if part.isdigit():
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return [f.alias or name for name, f in model.model_fields.items()]


SECTIONS: dict[str, type[BaseModel]] = {
    "database": DatabaseSettings, "web": WebSettings, "smtp": SmtpSettings, "dispatch": DispatchSettings,
    "dkim": DkimSettings, "bounces": BounceSettings, "gather": GatherSettings, "group": GroupSettings, "schedule": ScheduleSettings, "templates": TemplateSettings,
    "audience": AudienceSettings,
    "sources": SourceConfig, "lists": ListConfig,
}


def settings_reference() -> str:
    """Markdown tables of every setting (docs/configuration.md is checked against this by the tests)."""
    out: list[str] = []
    for section, model in SECTIONS.items():
        header = f"[[{section}]]" if section in ("sources", "lists") else f"[{section}]"
        out += [f"### `{header}`", "", "| key | type | default | env | meaning |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            key = field.alias or name
            default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
            kind = (str(field.annotation).replace("typing.", "").replace("pydantic.types.", "").replace("pathlib.", "")
                    .replace("digest.config_sections.", "").replace("<class '", "").replace("'>", "").replace(" | ", " or "))
            env = "" if section in ("sources", "lists") else f"`DIGEST_{section.upper()}__{key.upper()}`"
            out.append(f"| `{key}` | {kind} | `{default}` | {env} | {field.description or ''} |")
        out.append("")
    return "\n".join(out)
