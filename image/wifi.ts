// Wi-Fi for the image: every input checked, and the NetworkManager keyfile written as its reader
// expects (GKeyFile escapes; the SSID as bytes unless it is plain), so no value can add a line,
// a section or a kernel argument.

/** ISO 3166-1 alpha-2 codes: the Wi-Fi regulatory domains (from tzdata's iso3166.tab). */
const COUNTRIES = new Set(
  'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW'.split(
    ' ',
  ),
);

export interface Wifi {
  ssid: string;
  password: string;
  country: string;
}

/** What is wrong with the Wi-Fi settings, naming the option; undefined when they are fine. */
export function wifiProblem(w: Wifi): string | undefined {
  const ssidBytes = Buffer.byteLength(w.ssid);
  if (ssidBytes < 1 || ssidBytes > 32) return `--wifi-ssid: 1 to 32 bytes (this one has ${ssidBytes})`;
  if (w.ssid.includes('\0')) return '--wifi-ssid: no NUL characters';
  // WPA2/3 personal: a passphrase of 8 to 63 printable ASCII characters, or 64 hex digits (the key itself).
  if (!/^[\x20-\x7e]{8,63}$/.test(w.password) && !/^[0-9a-fA-F]{64}$/.test(w.password))
    return '--wifi-password-file: a WPA passphrase is 8 to 63 printable ASCII characters (or 64 hex digits)';
  if (!COUNTRIES.has(w.country))
    return `--wifi-country: ${JSON.stringify(w.country.slice(0, 20))} is not an ISO 3166-1 country code (two capital letters, GB, DE, US...)`;
  return undefined;
}

/** A GKeyFile value: backslash, newline, tab and carriage return escaped, a leading space as \s. */
export function keyfileValue(text: string): string {
  const escaped = text.replace(/[\\\n\t\r]/g, (c) => ({ '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r' })[c]!);
  return escaped.startsWith(' ') ? `\\s${escaped.slice(1)}` : escaped;
}

/** NetworkManager reads an SSID as text when it is plain, else as bytes: "72;111;109;101;". */
function ssidValue(ssid: string): string {
  return /^[A-Za-z0-9_.-][A-Za-z0-9 _.-]*$/.test(ssid) && !ssid.endsWith(' ') ? ssid : `${[...Buffer.from(ssid)].join(';')};`;
}

export function nmConnection(w: Wifi, uuid: string): string {
  const id = keyfileValue(`edge-agent Wi-Fi ${w.ssid}`);
  return `[connection]\nid=${id}\nuuid=${uuid}\ntype=wifi\ninterface-name=wlan0\nautoconnect=true\n\n[wifi]\nmode=infrastructure\nssid=${ssidValue(w.ssid)}\n\n[wifi-security]\nkey-mgmt=wpa-psk\npsk=${keyfileValue(w.password)}\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n`;
}
