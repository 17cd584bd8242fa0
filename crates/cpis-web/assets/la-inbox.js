// Notification inbox enhancement (docs/WEB.md, "LA pages"): the server-sent events stream
// GET /api/v1/notifications/stream (session cookie) says when a notification arrives; the rows are
// then fetched already rendered and escaped by the server (GET /la/notifications/rows?after=…),
// inserted at the top of the table, and announced in the page's aria-live region. Without this
// file the page is still right after a reload.

const KINDS = ['access', 'inactive-nhs-number', 'upload-report', 'escalation', 'was-not-brought',
  'birth', 'birth-reminder', 'adoption-invalidation']

function live (table) {
  const tbody = table.querySelector('[data-inbox-rows]')
  const region = document.querySelector('[data-inbox-live]')
  const empty = document.querySelector('[data-inbox-empty]')
  const ackSelected = document.querySelector('[data-inbox-actions]')
  let after = Number(table.getAttribute('data-live-after')) || 0
  let busy = false
  let again = false

  async function refresh () {
    if (busy) {
      again = true
      return
    }
    busy = true
    try {
      const reply = await fetch(`/la/notifications/rows?after=${after}`, { credentials: 'same-origin' })
      if (!reply.ok) return
      const template = document.createElement('template')
      template.innerHTML = await reply.text()
      const rows = [...template.content.querySelectorAll('tr[data-seq]')]
        .filter((tr) => Number(tr.getAttribute('data-seq')) > after)
      if (rows.length === 0) return
      after = Math.max(after, ...rows.map((tr) => Number(tr.getAttribute('data-seq'))))
      for (const tr of rows) tr.classList.add('cpis-new-row')
      tbody.prepend(...rows)
      table.hidden = false
      if (ackSelected) ackSelected.hidden = false
      if (empty) empty.hidden = true
      const first = rows[0].getAttribute('data-announce')
      region.textContent = rows.length === 1 ? first : `${rows.length} new notifications. ${first}`
    } catch {
      // The next event (or a reload) tries again.
    } finally {
      busy = false
      if (again) {
        again = false
        refresh()
      }
    }
  }

  const source = new EventSource(`/api/v1/notifications/stream?after=${after}`)
  for (const kind of KINDS) source.addEventListener(kind, refresh)
  source.addEventListener('message', refresh)
}

const inbox = document.querySelector('table[data-inbox][data-live-after]')
if (inbox && 'EventSource' in window) live(inbox)

// "Select all on this page": ticks or clears every item's checkbox (shown only with JavaScript).
const selectAll = document.querySelector('[data-inbox-select-all]')
if (selectAll) {
  selectAll.closest('[data-inbox-select-all-item]').hidden = false
  selectAll.addEventListener('change', () => {
    for (const box of document.querySelectorAll('[data-inbox-select]')) box.checked = selectAll.checked
  })
}
