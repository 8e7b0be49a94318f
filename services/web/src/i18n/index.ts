// The page's language: which locale is active, `t(key, params)` over its
// catalog, and sizes, numbers, durations and times in its conventions
// (Intl.PluralRules, Intl.NumberFormat, Intl.ListFormat, Intl.DateTimeFormat).
// Catalogs are plain modules typed against English (catalog.ts). English is
// in the main bundle (the fallback); every other catalog is its own chunk,
// fetched only when its language is chosen.
import type { Catalog, Key, PluralForms } from "./catalog";
import { en } from "./en";

export type { Catalog, Key, PluralForms } from "./catalog";

export const LOCALES = ["en", "zh", "es", "ja", "de", "fr", "ko"] as const;
export type Locale = (typeof LOCALES)[number];

const LOADERS: Readonly<Record<Locale, () => Promise<Catalog>>> = {
  en: async () => en,
  zh: () => import("./zh").then((m) => m.zh),
  es: () => import("./es").then((m) => m.es),
  ja: () => import("./ja").then((m) => m.ja),
  de: () => import("./de").then((m) => m.de),
  fr: () => import("./fr").then((m) => m.fr),
  ko: () => import("./ko").then((m) => m.ko),
};

/** Catalogs loaded so far. */
const loaded: Partial<Record<Locale, Catalog>> = { en };

/**
 * Each language's name in itself, for the switcher (equal to its catalog's
 * "lang.name", which the unit tests check), so the list needs no catalog fetched.
 */
export const NATIVE_NAMES: Readonly<Record<Locale, string>> = {
  en: "English", zh: "简体中文", es: "Español", ja: "日本語", de: "Deutsch", fr: "Français", ko: "한국어",
};

/** The BCP 47 tag each locale's text is written in (for <html lang> and Intl). */
export const LOCALE_TAGS: Readonly<Record<Locale, string>> = {
  en: "en", zh: "zh-Hans", es: "es", ja: "ja", de: "de", fr: "fr", ko: "ko",
};

/** Scripts written right to left; none of ours yet, but `dir` follows the locale. */
const RTL_LANGS = new Set(["ar", "fa", "he", "ur", "yi"]);

/** localStorage key of a choice made with the switcher. */
export const LOCALE_KEY = "privydrop-lang";

/**
 * A parameter: text as is, a number in the locale's digits, another message,
 * or a function called at each drawing (a size or a duration, so it is
 * formatted again when the language changes).
 */
export type Param = string | number | Msg | (() => string);
export type Params = Readonly<Record<string, Param>>;

/** A message kept as key and parameters, so it can be drawn again in another language. */
export interface Msg {
  readonly key: Key;
  readonly params?: Params;
}

export function msg(key: Key, params?: Params): Msg {
  return params ? { key, params } : { key };
}

/** An error whose text comes from the catalogs. */
export class LocalizedError extends Error {
  constructor(readonly msg: Msg) {
    super(t(msg.key, msg.params));
  }
}

/** What to show for a caught error: its message as a Msg when it has one, else its own text. */
export function errorDetail(e: unknown): Param {
  if (e instanceof LocalizedError) return e.msg;
  return e instanceof Error ? e.message : String(e);
}

interface Formats {
  plural: Intl.PluralRules;
  number: Intl.NumberFormat;
  percent: Intl.NumberFormat;
  list: Intl.ListFormat;
  time: Intl.DateTimeFormat;
  units: Map<string, Intl.NumberFormat>;
}

let current: Locale = "en";
let formats = makeFormats("en");
const listeners: ((l: Locale) => void)[] = [];

function makeFormats(l: Locale): Formats {
  const tag = LOCALE_TAGS[l];
  return {
    plural: new Intl.PluralRules(tag),
    number: new Intl.NumberFormat(tag),
    percent: new Intl.NumberFormat(tag, { style: "percent", maximumFractionDigits: 0 }),
    list: new Intl.ListFormat(tag, { type: "unit", style: "short" }),
    time: new Intl.DateTimeFormat(tag, { timeStyle: "short" }),
    units: new Map(),
  };
}

export function locale(): Locale {
  return current;
}

export function isLocale(v: unknown): v is Locale {
  return typeof v === "string" && (LOCALES as readonly string[]).includes(v);
}

/**
 * The best of our locales for a list of preferred language tags, in order of
 * preference (navigator.languages): an exact language match on the primary
 * subtag ("de-AT" → de, "zh-TW" → zh); English when none matches.
 */
export function matchLocale(preferred: readonly string[]): Locale {
  for (const tag of preferred) {
    const base = tag.trim().toLowerCase().split(/[-_]/)[0];
    if (isLocale(base)) return base;
  }
  return "en";
}

/** The saved choice, else the browser's preferences. */
export function initialLocale(store: Pick<Storage, "getItem"> | null, preferred: readonly string[]): Locale {
  let saved: string | null = null;
  try {
    saved = store?.getItem(LOCALE_KEY) ?? null;
  } catch { /* storage may be blocked: preferences decide */ }
  return isLocale(saved) ? saved : matchLocale(preferred);
}

/**
 * Makes `l` the active locale once its catalog is loaded; listeners redraw
 * what they show. A catalog that cannot be fetched leaves the locale as it was.
 */
export async function setLocale(l: Locale): Promise<void> {
  loaded[l] ??= await LOADERS[l]();
  current = l;
  formats = makeFormats(l);
  if (typeof document !== "undefined") {
    document.documentElement.lang = LOCALE_TAGS[l];
    document.documentElement.dir = RTL_LANGS.has(l) ? "rtl" : "ltr";
  }
  for (const f of listeners) f(l);
}

export function onLocaleChange(f: (l: Locale) => void): void {
  listeners.push(f);
}

function param(v: Param): string {
  if (typeof v === "number") return formats.number.format(v);
  if (typeof v === "string") return v;
  if (typeof v === "function") return v();
  return t(v.key, v.params);
}

function pluralForm(forms: PluralForms, count: number): string {
  const cat = formats.plural.select(count) as keyof PluralForms;
  return forms[cat] ?? forms.other;
}

/** The active locale's text for `key`, with {name} replaced by `params.name`. */
export function t(key: Key, params?: Params): string {
  const m: string | PluralForms | undefined = loaded[current]?.[key] ?? en[key];
  if (m === undefined) return key;
  const count = params?.count;
  const text = typeof m === "string" ? m : pluralForm(m, typeof count === "number" ? count : 0);
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (all, name: string) => (name in params ? param(params[name]) : all));
}

export function tm(m: Msg): string {
  return t(m.key, m.params);
}

// --- numbers, sizes, durations, times ------------------------------------------------------

function unitFormat(unit: string, digits: number): Intl.NumberFormat {
  const id = `${unit}/${digits}`;
  let f = formats.units.get(id);
  if (!f) {
    f = new Intl.NumberFormat(LOCALE_TAGS[current], { style: "unit", unit, unitDisplay: "short", maximumFractionDigits: digits });
    formats.units.set(id, f);
  }
  return f;
}

const SIZE_UNITS = ["kilobyte", "megabyte", "gigabyte", "terabyte", "petabyte"];

/** Decimal units (1 kB = 1000 bytes), one decimal below 10: "1.2 MB", "1,2 Mo", "340 kB". */
function scaled(n: number, suffix: string): string {
  let v = n / 1000;
  let i = 0;
  while (v >= 999.5 && i < SIZE_UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  return unitFormat(SIZE_UNITS[i] + suffix, v < 10 ? 1 : 0).format(v);
}

export function formatBytes(n: number): string {
  if (n < 1000) return t("size.bytes", { count: Math.max(0, Math.round(n)) });
  return scaled(n, "");
}

/** A size as a parameter, formatted when drawn (in the language of that moment). */
export function bytes(n: number): () => string {
  return () => formatBytes(n);
}

/** Bytes per second: "2.5 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  if (bytesPerSecond < 1000) return unitFormat("byte-per-second", 0).format(Math.round(bytesPerSecond));
  return scaled(bytesPerSecond, "-per-second");
}

/** "45 sec", "2 min, 5 sec", "1 hr, 3 min" in the locale's words; "–" when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const s = Math.ceil(seconds);
  if (s < 60) return unitFormat("second", 0).format(s);
  const m = Math.floor(s / 60);
  if (m < 60) return formats.list.format([unitFormat("minute", 0).format(m), unitFormat("second", 0).format(s % 60)]);
  return formats.list.format([unitFormat("hour", 0).format(Math.floor(m / 60)), unitFormat("minute", 0).format(m % 60)]);
}

/** A share in [0, 1] as a percentage: "42%", "42 %". */
export function formatPercent(share: number): string {
  return formats.percent.format(Math.floor(share * 100) / 100);
}

export function formatNumber(n: number): string {
  return formats.number.format(n);
}

/** A clock time: "7:42 PM", "19:42". */
export function formatTime(d: Date): string {
  return formats.time.format(d);
}
