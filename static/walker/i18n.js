// Messages in the page's language, from the same catalogs and rules as the server
// (cartoparty/i18n.py): `{name}` placeholders, plural forms chosen by the parameter `n`,
// numbers written for the language. The server hands the catalog to the page in its state.

const PLACEHOLDER = /\{([a-z_][a-z0-9_]*)\}/g;

// t(key, params) for one language's catalog; an unknown key gives the key itself.
export function translator(messages, lang) {
  const plurals = new Intl.PluralRules(lang);
  const numbers = new Intl.NumberFormat(lang, { maximumFractionDigits: 20 });
  return (key, params = {}) => {
    let message = messages[key] ?? key;
    if (typeof message === "object") message = message[plurals.select(params.n ?? 0)] ?? message.other;
    return message.replace(PLACEHOLDER, (whole, name) => {
      if (!(name in params)) return whole;
      const value = params[name];
      return typeof value === "number" ? numbers.format(value) : String(value);
    });
  };
}

// The text of an API error ({code, field, message, params}) in the page's language; the
// server's English text when the catalog does not know the code.
export function errorText(t, error, fallback = "") {
  if (!error) return fallback;
  if (typeof error === "string") return error;
  const key = `error.${error.code}`;
  const text = t(key, error.params || {});
  return text === key ? error.message || fallback : text;
}
