// Credentials inside URLs (postgres://edge:PASS@db, https://hook?token=T) are secrets too: wherever
// config or an error is shown or logged, the password and every query value become "***".

const URL_START = /^[a-z][a-z0-9+.-]*:\/\//i;
/** A URL inside text: from its scheme to the next space or quote. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;

/** The URL with its password and query values masked; text that is no URL comes back as it was. */
export function redactUrl(text: string): string {
  if (!URL_START.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text.replace(/(\/\/[^/@:]*:)[^/@]*@/, '$1***@').replace(/([?&][^=&#]*=)[^&#]*/g, '$1***');
  }
  if (url.password) url.password = '***';
  for (const key of [...new Set(url.searchParams.keys())]) url.searchParams.set(key, '***');
  url.hash = '';
  // URL encodes the stars in a query; they read better plain.
  return url.toString().replaceAll('%2A%2A%2A', '***');
}

/** Every URL inside a message (an error that quotes one) masked the same way. */
export function redactUrlsIn(text: string): string {
  return text.replace(URL_IN_TEXT, (url) => redactUrl(url));
}
