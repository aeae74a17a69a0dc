// Ticket pricing, shown to the shopper before confirming. The server recomputes
// the real cost; this mirrors chalicelib/domain/pricing.py exactly.
//   rollover credits are spent first, then one free entry, then n paid entries
//   costing unit * n(n+1)(2n+1)/6.

export function paidCost(paid, unit) {
  if (paid <= 0) return 0;
  return (unit * paid * (paid + 1) * (2 * paid + 1)) / 6;
}

export function breakdown(tickets, rolloverBalance = 0, unit = 1) {
  const t = Math.max(1, Math.floor(Number(tickets) || 1));
  const rollover = Math.max(0, Math.min(Math.floor(Number(rolloverBalance) || 0), t));
  const rest = t - rollover;
  const free = rest > 0 ? 1 : 0;
  const paid = Math.max(0, rest - free);
  return { tickets: t, rollover, free, paid, cost: paidCost(paid, Number(unit) || 0) };
}
