// Times and numbers on the organiser pages: times in the event's time zone (the page state's
// `timezone`, the server's TIMEZONE) whatever the organiser's computer is set to, as the
// server's pages write them (cartoparty/i18n.py format_time); numbers in the page's language.

const WALL_CLOCK_PARTS = ["year", "month", "day", "hour", "minute", "second"];

export function formats(lang, timeZone) {
  const dateTime = new Intl.DateTimeFormat(lang, { timeZone, dateStyle: "medium", timeStyle: "short" });
  const time = new Intl.DateTimeFormat(lang, { timeZone, timeStyle: "medium" });
  const whole = new Intl.NumberFormat(lang);
  const decimals = new Map();
  // The wall clock of the event's zone at a moment, read as if it were UTC (milliseconds).
  const clock = new Intl.DateTimeFormat("en-GB", {
    timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const wallClock = (ms) => {
    const parts = Object.fromEntries(clock.formatToParts(new Date(ms)).map((p) => [p.type, Number(p.value)]));
    const [year, month, day, hour, minute, second] = WALL_CLOCK_PARTS.map((name) => parts[name]);
    return Date.UTC(year, month - 1, day, hour, minute, second);
  };
  return {
    // A moment (ISO 8601 text or a Date) as a date and time, or its time only; "—" for none.
    dateTime: (moment) => (moment ? dateTime.format(new Date(moment)) : "—"),
    time: (moment) => (moment ? time.format(new Date(moment)) : "—"),
    number: (value) => whole.format(value),
    // A number with exactly `digits` decimals: "4,0" in French, "4.0" in English.
    decimal(value, digits) {
      if (!decimals.has(digits)) {
        decimals.set(digits, new Intl.NumberFormat(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits }));
      }
      return decimals.get(digits).format(value);
    },
    // The moment a datetime-local input names ("2026-06-13T10:00"), read in the event's zone:
    // the zone's offset is taken at a first guess, then again at the answer (a DST change
    // may lie between them).
    fromLocal(value) {
      const [date, hours = "00:00"] = value.split("T");
      const [year, month, day] = date.split("-").map(Number);
      const [hour, minute] = hours.split(":").map(Number);
      const wanted = Date.UTC(year, month - 1, day, hour, minute);
      let moment = wanted - (wallClock(wanted) - wanted);
      moment = wanted - (wallClock(moment) - moment);
      return new Date(moment);
    },
  };
}
