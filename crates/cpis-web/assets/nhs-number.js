// NHS number fields: checks length and the modulus-11 check digit before the form is sent and
// shows the same error summary and message the server would, without a round trip. The messages
// come from the field's data-error-* attributes, which the server renders from its own validation
// (crates/cpis-server/src/web/clinician.rs), so both paths say exactly the same thing.

/** The error key for a value, or null when it is a valid NHS number. */
export function nhsNumberProblem (value) {
  const digits = value.replace(/ /g, '').trim()
  if (digits === '') return 'empty'
  if (!/^[0-9]+$/.test(digits)) return 'characters'
  if (digits.length !== 10) return 'length'
  let sum = 0
  for (let i = 0; i < 9; i++) sum += Number(digits[i]) * (10 - i)
  let check = 11 - (sum % 11)
  if (check === 11) check = 0
  if (check === 10 || check !== Number(digits[9])) return 'checkDigit'
  return null
}

function showSummary (form, input, message) {
  const main = document.getElementById('maincontent')
  main.querySelectorAll('.nhsuk-error-summary').forEach((el) => el.remove())
  const summary = document.createElement('div')
  summary.className = 'nhsuk-error-summary'
  summary.setAttribute('tabindex', '-1')
  const alert = document.createElement('div')
  alert.setAttribute('role', 'alert')
  const title = document.createElement('h2')
  title.className = 'nhsuk-error-summary__title'
  title.textContent = 'There is a problem'
  const body = document.createElement('div')
  body.className = 'nhsuk-error-summary__body'
  const list = document.createElement('ul')
  list.className = 'nhsuk-list nhsuk-error-summary__list'
  const item = document.createElement('li')
  const link = document.createElement('a')
  link.href = `#${input.id}`
  link.textContent = message
  item.append(link)
  list.append(item)
  body.append(list)
  alert.append(title, body)
  summary.append(alert)
  const anchor = main.querySelector('[data-error-summary-anchor]') || main.firstElementChild
  anchor.prepend(summary)
  if (!document.title.startsWith('Error: ')) document.title = `Error: ${document.title}`
  summary.focus()
}

function showFieldError (input, message) {
  const group = input.closest('.nhsuk-form-group')
  group.classList.add('nhsuk-form-group--error')
  input.classList.add('nhsuk-input--error')
  const id = `${input.id}-error`
  let error = document.getElementById(id)
  if (!error) {
    error = document.createElement('span')
    error.className = 'nhsuk-error-message'
    error.id = id
    input.before(error)
    const described = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean)
    if (!described.includes(id)) described.push(id)
    input.setAttribute('aria-describedby', described.join(' '))
  }
  const hidden = document.createElement('span')
  hidden.className = 'nhsuk-u-visually-hidden'
  hidden.textContent = 'Error:'
  error.replaceChildren(hidden, ` ${message}`)
}

export function enhanceNhsNumberForms (root) {
  root.querySelectorAll('input[data-nhs-number]').forEach((input) => {
    input.form.addEventListener('submit', (event) => {
      const problem = nhsNumberProblem(input.value)
      if (problem === null) return
      event.preventDefault()
      const key = `error${problem[0].toUpperCase()}${problem.slice(1)}`
      const message = input.dataset[key]
      showFieldError(input, message)
      showSummary(input.form, input, message)
    })
  })
}
