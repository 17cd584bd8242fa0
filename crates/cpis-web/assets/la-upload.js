// Upload page enhancement (docs/WEB.md, "LA pages"): the form is sent with XMLHttpRequest so a
// progress bar shows the file going up, then the report API (GET /api/v1/uploads/{id}, which takes
// the session cookie) is polled while the rows are checked, and the browser moves to the report.
// Anything unexpected falls back to the ordinary form post, which works without this file.

const POLL_MS = 400

function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function enhanceUploadForm (form) {
  const box = form.querySelector('[data-upload-progress]')
  const bar = box.querySelector('progress')
  const status = box.querySelector('[data-upload-status]')
  const button = form.querySelector('button[type="submit"]')
  const file = form.querySelector('input[type="file"]')
  const words = (name) => box.getAttribute(`data-text-${name}`)

  const fallBack = () => {
    button.disabled = false
    form.submit()
  }

  form.addEventListener('submit', (event) => {
    // Without a file the server answers with the error summary: let the ordinary post do it.
    if (!file.files || file.files.length === 0) return
    event.preventDefault()
    button.disabled = true
    box.hidden = false
    bar.value = 0
    status.textContent = words('sending')
    const xhr = new XMLHttpRequest()
    xhr.open('POST', form.action)
    xhr.setRequestHeader('Accept', 'application/json')
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable) {
        bar.value = Math.round((e.loaded * 100) / e.total)
        status.textContent = `${words('sending')}: ${bar.value}%`
      }
    })
    xhr.addEventListener('load', () => {
      if (xhr.status !== 202) return fallBack()
      let body
      try {
        body = JSON.parse(xhr.responseText)
      } catch {
        return fallBack()
      }
      bar.value = 100
      waitForReport(body, bar, status, button, words)
    })
    xhr.addEventListener('error', fallBack)
    xhr.send(new FormData(form))
  })
}

async function waitForReport (upload, bar, status, button, words) {
  status.textContent = words('checking')
  bar.removeAttribute('value') // indeterminate while the server works
  for (;;) {
    let reply
    try {
      reply = await fetch(upload.status, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
    } catch {
      break
    }
    if (reply.status === 404) {
      // CPF05: the service could not store the upload, and nothing was applied.
      status.textContent = words('unavailable')
      button.disabled = false
      return
    }
    if (reply.status !== 200) break
    const report = await reply.json()
    if (report.status !== 'processing') break
    status.textContent = `${words('checking')}: ${report.rows_processed} ${words('checked')}`
    await sleep(POLL_MS)
  }
  window.location.assign(upload.report)
}

async function refreshWhenProcessed (element) {
  const id = element.getAttribute('data-processing-upload')
  for (;;) {
    await sleep(POLL_MS)
    let reply
    try {
      reply = await fetch(`/api/v1/uploads/${encodeURIComponent(id)}`, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
    } catch {
      return
    }
    if (reply.status !== 200) break
    const report = await reply.json()
    if (report.status !== 'processing') break
    element.textContent = `${element.getAttribute('data-text-processed')} ${report.rows_processed} (${report.phase}).`
  }
  window.location.reload()
}

const uploadForm = document.querySelector('form[data-la-upload]')
if (uploadForm) enhanceUploadForm(uploadForm)
const processing = document.querySelector('[data-processing-upload]')
if (processing) refreshWhenProcessed(processing)
