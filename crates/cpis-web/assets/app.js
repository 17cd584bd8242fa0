// cpis web UI: progressive enhancement. Every page works without this file (docs/WEB.md).
// Loaded as an ES module from the same /assets/<id>/ directory as the NHS.UK frontend, so the
// relative imports always match the embedded build.
import { initAll } from './nhsuk-frontend.min.js'
import { enhanceNhsNumberForms } from './nhs-number.js'
// The local authority pages: each acts only when its page's elements are present.
import './la-inbox.js'
import './la-upload.js'

// What the NHS.UK page template does with an inline script (our CSP allows no inline scripts).
document.body.classList.add('js-enabled')
if ('noModule' in HTMLScriptElement.prototype) {
  document.body.classList.add('nhsuk-frontend-supported')
}

initAll()
enhanceNhsNumberForms(document)
