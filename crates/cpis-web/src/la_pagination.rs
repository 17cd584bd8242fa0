//! A link of the NHS.UK pagination component (`templates/partials/la_pagination.html`), shared
//! by the LA pages.

pub struct PageLink {
    pub href: String,
    pub label: String,
}
