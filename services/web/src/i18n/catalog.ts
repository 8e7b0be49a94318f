// The shape every locale's catalog has: exactly English's keys, a string
// where English has a string and plural forms where English has them.
import type { en } from "./en";

export type Key = keyof typeof en;

/** One message per CLDR plural category; `other` is always there. */
export interface PluralForms {
  readonly zero?: string;
  readonly one?: string;
  readonly two?: string;
  readonly few?: string;
  readonly many?: string;
  readonly other: string;
}

export type Catalog = { readonly [K in Key]: (typeof en)[K] extends string ? string : PluralForms };
