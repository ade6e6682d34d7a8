"""The HTML that Odoo's portal templates render, per maintained version (see the package docstring for sources).

Only the markup a customer's browser receives is reproduced (class names, table structure, form
fields, links); Odoo's QWeb engine, assets and scripts are not, but for the few lines that stand in
for the login page's ``web.user_switch`` on 18.0 and master (see :func:`login_page`). Values are rendered as Odoo's
``fr_FR`` language renders them: dates ``dd/mm/yyyy``, amounts ``1 234,56 €`` with a narrow
no-break space between thousands (Odoo's ``fr_FR`` separator) and a no-break space before the
symbol. Labels are the templates' source (English) strings.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from html import escape

from sandbox.data import french_number
from sandbox.odoo.data import OdooInvoice


def money(amount: Decimal) -> str:
    """The ``monetary`` widget: ``<span class="oe_currency_value">1 234,56</span>&nbsp;€`` (narrow no-break spaces)."""
    return f'<span class="oe_currency_value">{french_number(amount, chr(0x202F))}</span>\u00a0€'


def day(value: date) -> str:
    return f"{value:%d/%m/%Y}"


def layout(title: str, main: str, *, user: str | None, company: str, body_class: str = "", header: bool = True) -> str:
    """``web.layout`` + ``web.frontend_layout`` + ``portal.frontend_layout`` (the navbar with the user's menu)."""
    menu = (
        f'<li class="nav-item dropdown o_no_autohide_item"><a href="#" role="button" data-bs-toggle="dropdown" '
        f'class="dropdown-toggle nav-link"><span>{escape(user)}</span></a>'
        '<div class="dropdown-menu js_usermenu dropdown-menu-end" role="menu">'
        '<a href="/my/home" role="menuitem" class="dropdown-item ps-3">My Account</a>'
        '<div id="o_logout_divider" class="dropdown-divider"></div>'
        '<a href="/web/session/logout?redirect=/" role="menuitem" id="o_logout" class="dropdown-item ps-3">Logout</a>'
        "</div></li>"
        if user
        else '<li class="nav-item o_no_autohide_item"><a href="/web/login" class="nav-link">Sign in</a></li>'
    )
    nav = (
        '<header id="top" data-anchor="true"><nav class="navbar navbar-expand navbar-light bg-light"><div class="container">'
        f'<a href="/" class="navbar-brand logo"><img src="/logo.png?company=1" alt="Logo of {escape(company)}" '
        f'title="{escape(company)}"/></a><ul id="top_menu" class="nav navbar-nav ms-auto">{menu}</ul></div></nav></header>'
        if header
        else ""
    )
    footer = (
        '<footer id="bottom" data-anchor="true" class="bg-light o_footer"><div id="footer"></div>'
        '<div class="o_footer_copyright"><div class="container py-3"><div class="row">'
        f'<div class="col-sm text-center text-sm-start text-muted"><span class="o_footer_copyright_name me-2">'
        f"Copyright &amp;copy; <span>{escape(company)}</span></span></div></div></div></div></footer>"
        if header
        else ""
    )
    return (
        f'<!DOCTYPE html>\n<html lang="fr-FR"><head><meta charset="utf-8"/>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
        f"<title>{escape(title)} | {escape(company)}</title></head>"
        f'<body class="{body_class}"><div id="wrapwrap" class="{"o_portal" if user else ""}">{nav}'
        f"<main>{main}</main>{footer}</div></body></html>"
    )


def newer(version: str, than: str) -> bool:
    """Whether ``version`` comes after ``than`` (``master`` after every numbered version)."""
    order = {"16.0": 16, "17.0": 17, "18.0": 18, "master": 99}
    return order[version] > order[than]


def login_page(version: str, company: str, csrf: str, *, login: str = "", error: str = "", redirect: str = "") -> str:
    """``web.login`` in ``web.login_layout``.

    16.0 and 17.0: a plain form. 18.0 and master: the ``web.user_switch`` Owl component before the form, which is
    ``d-none`` unless a login is filled in (a refused login comes back with it); the component's script shows the
    form when the browser remembers fewer than two accounts (a fresh browser: none). Here the one CSS rule and a
    short script stand in for Odoo's assets, so a browser sees the form appear a moment after the page, as on Odoo.
    18.0 and master label the fields ``d-flex`` and add a hidden ``type=password`` field; master puts the password
    in a ``password-reveal`` input group with a Caps Lock warning.
    """
    recent = newer(version, "17.0")
    label = "form-label d-flex justify-content-between" if recent else "form-label"
    field = (
        'type="password" placeholder="Password" name="password" id="password" class="form-control{}" '
        'required="required" autocomplete="current-password" maxlength="4096"'
    )
    if version == "master":
        password = (
            f'<div><label for="password" class="{label}">Password</label>'
            f'<div class="input-group mb-1" data-widget="password-reveal"><input {field.format(" password-input")}/>'
            '<button type="button" class="btn btn-sm btn-secondary password-toggle" tabindex="-1"><i class="fa fa-eye"></i></button>'
            '</div><span class="caps-lock-warning text-danger invisible">Caps Lock is on!</span></div>'
        )
    else:
        password = (
            f'<div class="mb-3"><label for="password" class="{label}">Password</label><input {field.format("")}/></div>'
        )
    alert = f'<p class="alert alert-danger" role="alert">{escape(error)}</p>' if error else ""
    hidden = recent and not login  # shown by web.user_switch
    form_class = "oe_login_form" + (" d-none" if hidden else "")
    form = (
        ('<owl-component name="web.user_switch"></owl-component>' if hidden else "")
        + f'<form class="{form_class}" role="form" action="/web/login" method="post" '
        "onsubmit=\"this.action = '/web/login' + location.hash\""
        + (' data-widget="caps-lock-check"' if version == "master" else "")
        + f'><input type="hidden" name="csrf_token" value="{escape(csrf)}"/>'
        f'<div class="mb-3 field-login"><label for="login" class="{label}">Email</label>'
        f'<input type="text" placeholder="Email" name="login" value="{escape(login)}" id="login" class="form-control" '
        'required="required" autocapitalize="off" autocomplete="username"/></div>'
        f"{password}{alert}"
        f'<div class="{"" if recent else "clearfix "}oe_login_buttons text-center gap-1 d-grid mb-1 pt-3">'
        '<button type="submit" class="btn btn-primary">Log in</button><div class="o_login_auth"></div></div>'
        + ('<input type="hidden" name="type" value="password"/>' if recent else "")
        + f'<input type="hidden" name="redirect" value="{escape(redirect)}"/></form>'
        + (_USER_SWITCH if hidden else "")
    )
    card = (
        '<div class="container py-5"><div class="card border-0 mx-auto bg-100 o_database_list" style="max-width: 300px;">'
        '<div class="card-body"><div class="text-center pb-3 border-bottom mb-4">'
        '<img src="/web/binary/company_logo" alt="Logo" style="max-height:120px; max-width: 100%; width:auto"/></div>'
        f'{form}<div class="text-center small mt-4 pt-3 border-top"><a href="https://www.odoo.com?utm_source=db&amp;'
        'utm_medium=auth" target="_blank">Powered by <span>Odoo</span></a></div></div></div></div>'
    )
    return layout("Login", card, user=None, company=company, body_class="bg-100", header=False)


# Stands in for Odoo's assets on the login page of 18.0 and master: Bootstrap's d-none rule, and what web.user_switch
# does in a browser that remembers no account (it shows the form), after a short delay like the assets' loading.
_USER_SWITCH = (
    "<style>.d-none{display:none!important}</style>"
    "<script>setTimeout(function(){"
    "document.querySelector('form.oe_login_form').classList.remove('d-none')},300)</script>"
)


def home_page(version: str, company: str, user: str, invoice_count: int) -> str:
    """``portal.portal_my_home`` with account's invoices entry (its count filled, as the page's script does).

    16.0: a "Documents" ``list-group`` of ``portal.portal_docs_entry`` links; 17.0 and 18.0: index cards.
    """
    if version == "16.0":
        main = (
            '<div id="wrap" class="o_portal_wrap"><div class="container mb64"><div class="row justify-content-between mt-4">'
            '<div class="col-12 col-md col-lg-6"><div class="o_portal_my_home">'
            '<div class="oe_structure" id="oe_structure_portal_my_home_1"></div><h3>Documents</h3>'
            '<div class="o_portal_docs list-group"><p class="o_portal_no_doc_message d-none">No Documents to display</p>'
            '<a href="/my/invoices" title="Invoices &amp; Bills" class="list-group-item list-group-item-action d-flex '
            'align-items-center justify-content-between">Invoices &amp; Bills<span class="badge text-bg-secondary '
            f'rounded-pill" data-placeholder_count="invoice_count">{invoice_count}</span></a></div></div></div></div></div></div>'
        )
        return layout("My Portal", main, user=user, company=company)
    main = (
        '<div id="wrap" class="o_portal_wrap"><div class="container pt-3 pb-5"><h3 class="my-3">My account</h3>'
        '<div class="o_portal_my_home"><div class="o_portal_docs row g-2">'
        '<div class="o_portal_category row g-2 mt-3" id="portal_client_category">'
        '<div class="o_portal_index_card col-md-6 order-2"><a href="/my/invoices?filterby=invoices" title="Your Invoices" '
        'class="d-flex gap-2 gap-md-3 py-3 pe-2 px-md-3 h-100 rounded text-decoration-none bg-100"><div>'
        f'<div class="mt-0 mb-1 fs-5 fw-normal lh-1 d-flex gap-2"><span data-placeholder_count="invoice_count">{invoice_count}</span>'
        '<span>Your Invoices</span></div><div class="opacity-75">Follow, download or pay your invoices</div></div></a></div>'
        "</div></div></div></div></div>"
    )
    return layout("My Portal", main, user=user, company=company)


def pager(version: str, page: int, page_count: int, base: str = "/my/invoices", args: str = "") -> str:
    """``portal.pager``: previous, the page numbers (a window of five), next; page 1 is ``base``, page N ``base/page/N``."""
    if page_count <= 1:
        return ""

    def url(number: int) -> str:
        return (f"{base}/page/{number}" if number > 1 else base) + (f"?{args}" if args else "")

    first = max(1, min(page - 2, page_count - 4))
    numbers = range(first, min(first + 4, page_count) + 1)
    prev_href = f' href="{escape(url(page - 1))}"' if page != 1 else ""
    next_href = f' href="{escape(url(page + 1))}"' if page != page_count else ""
    items = "".join(
        f'<li class="page-item {"active" if n == page else ""}"> <a href="{escape(url(n))}" class="page-link ">{n}</a></li>'
        for n in numbers
    )
    ul = (
        '<ul class=" pagination m-0 ">'
        f'<li class="page-item {"disabled" if page == 1 else ""}"><a{prev_href} class="page-link ">'
        '<span class="fa fa-chevron-left" role="img" aria-label="Previous" title="Previous"></span></a></li>'
        f"{items}"
        f'<li class="page-item {"disabled" if page == page_count else ""}"><a{next_href} class="page-link ">'
        '<span class="fa fa-chevron-right" role="img" aria-label="Next" title="Next"></span></a></li></ul>'
    )
    wrapper = "o_portal_pager d-flex justify-content-center" + ("" if version == "16.0" else " my-3")
    return f'<div class="{wrapper}">{ul}</div>'


def _badge(version: str, invoice: OdooInvoice) -> str:
    def pill(colour: str, icon: str, label: str, extra: str = "") -> str:
        return (
            f'<span class="badge rounded-pill text-bg-{colour}"{extra}><i class="fa fa-fw {icon}" aria-label="{label}" '
            f'title="{label}" role="img"></i><span class="d-none d-md-inline"> {label}</span></span>'
        )

    if invoice.payment_state == "paid":
        return pill("success", "fa-check", "Paid")
    return pill("info", "fa-clock-o", "Waiting for Payment", ' name="invoice_status_waiting_for_payment"')


def invoices_page(version: str, company: str, user: str, invoices: list[OdooInvoice], pager_html: str, today: date) -> str:
    """``account.portal_my_invoices`` through ``portal.portal_table``: the amount column is the amount DUE."""
    nav, ol = (  # 16.0: the bordered navbar of breadcrumbs_searchbar
        ("navbar navbar-light navbar-expand-lg border py-0 mb-2 o_portal_navbar  mt-3 rounded", "mb-0 py-2 flex-grow-1")
        if version == "16.0"
        else ("navbar navbar-expand-lg flex-wrap mb-4 p-0 o_portal_navbar ", "mb-0 flex-grow-1 px-0")
    )
    searchbar = (
        f'<nav class="{nav}"><ol class="o_portal_submenu breadcrumb {ol}"><li class="breadcrumb-item ms-1">'
        '<a href="/my/home" aria-label="Home" title="Home"><i class="fa fa-home"></i></a></li>'
        '<li class="breadcrumb-item active">Invoices &amp; Bills</li></ol></nav>'
    )
    if not invoices:
        empty = "<p>" if version == "16.0" else '<p class="alert alert-warning">'  # 16.0: a bare paragraph
        table = f"{empty}There are currently no invoices and payments for your account.</p>"
    else:
        status_first = not newer(version, "17.0")  # 18.0 moved Amount Due before Status
        amount_th = (
            '<th class="text-end">Amount Due</th>' if status_first else '<th name="amount_due" class="text-end pe-3">Amount Due</th>'
        )
        status_th = '<th class="text-center">Status</th>' if version == "16.0" else '<th name="status">Status</th>'
        head = (
            "<th>Invoice #</th><th>Invoice Date</th><th class='d-none d-md-table-cell'>Due Date</th>"
            if version == "16.0"
            else '<th name="invoice_number">Invoice #</th><th name="invoice_date">Invoice Date</th>'
            '<th name="due_date" class="d-none d-md-table-cell">Due Date</th>'
        )
        head += status_th + amount_th if status_first else amount_th + status_th
        rows = []
        for invoice in invoices:
            url = f"/my/invoices/{invoice.id}?access_token={invoice.access_token}"
            late = invoice.due < today and invoice.payment_state != "paid"
            due_class = "d-none d-md-table-cell" + (" text-danger" if late and newer(version, "17.0") else "")
            amount_name = 'name="invoice_amount" ' if version == "master" else ""  # master names the amount cell
            amount_class = "text-end" + ("" if status_first else " pe-3")
            amount_td = f'<td {amount_name}class="{amount_class}"><span>{money(invoice.amount_residual)}</span></td>'
            status_cell = '<td class="tx_status text-center">' if version == "16.0" else '<td name="invoice_status">'
            status_td = f"{status_cell}{_badge(version, invoice)}</td>"
            rows.append(
                f'<tr><td><a href="{escape(url)}" title="{escape(invoice.name)}">{escape(invoice.name)}</a></td>'
                f"<td><span>{day(invoice.invoice.issued)}</span></td>"
                f'<td class="{due_class}"><span>{day(invoice.due)}</span></td>'
                + (status_td + amount_td if status_first else amount_td + status_td)
                + "</tr>"
            )
        if version == "16.0":
            wrapper = '<div class="table-responsive border rounded border-top-0 ">'
            table_class = "table rounded mb-0 bg-white o_portal_my_doc_table"
        else:
            wrapper = '<div class="table-responsive border-0 ">'
            table_class = "o_list_table position-relative table table-sm o_list_table_ungrouped table-striped o_portal_my_doc_table mb-0"
        table = (
            f'{wrapper}<table class="{table_class}"><thead><tr class="active">{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>{pager_html}'
        )
    container = "container mb64" if version == "16.0" else "container pt-3 pb-5"
    main = f'<div id="wrap" class="o_portal_wrap"><div class="{container}">{searchbar}{table}</div></div>'
    return layout("Invoices", main, user=user, company=company)


def invoice_page(version: str, company: str, user: str | None, invoice: OdooInvoice) -> str:
    """``account.portal_invoice_page``: the sidebar's amount and the Download button.

    16.0 and 17.0 show the amount due while something is left to pay, the total once paid;
    18.0 and master always show the total (and "Left to Pay" under it for a partly paid invoice), then the
    due date while unpaid (``o_portal_sidebar_timeago``); master's sidebar adds "Powered by" and a vertical rule.
    """
    query = f"access_token={invoice.access_token}"
    pdf = escape(f"/my/invoices/{invoice.id}?{query}&report_type=pdf&download=true")
    html_report = escape(f"/my/invoices/{invoice.id}?{query}&report_type=html")
    powered = rule = ""
    if newer(version, "17.0"):
        title = f'<h2 class="mb-0 text-break mx-auto"><span>{money(invoice.amount_total)}</span></h2>'
        if invoice.payment_state == "partial":
            paid = invoice.amount_total - invoice.amount_residual
            title += (
                '<div class="my-1 w-100"><div class="alert alert-success px-2 py-1 text-center mb-2">Already Paid: '
                f'<span>{money(paid)}</span></div><div class="alert alert-warning px-2 py-1 text-center mb-2">'
                f"Left to Pay: <span>{money(invoice.amount_residual)}</span></div></div>"
            )
        if invoice.payment_state != "paid":  # the due date, which the page's script writes as "in N days"
            title += (
                '<div class="small w-100 text-center"><i class="fa fa-clock-o"></i>'
                f'<span class="o_portal_sidebar_timeago ml4" datetime="{invoice.due.isoformat()}"></span></div>'
            )
        if version == "master":
            powered = (
                '<div class="d-none d-lg-block mt-5 small text-center text-muted">Powered by <a target="_blank" '
                'href="http://www.odoo.com?utm_source=db&amp;utm_medium=portal" title="odoo">'
                '<img src="/web/static/img/logo.png" alt="Odoo Logo" height="15"/></a></div>'
            )
            rule = '<div class="vr d-none d-lg-block bg-300"></div>'
        download = (
            '<div class="o_download_pdf d-flex flex-lg-column flex-xl-row flex-wrap gap-2">'
            f'<a class="btn btn-light o_download_btn flex-grow-1" href="{pdf}" title="Download" role="button">'
            '<i class="fa fa-download"></i> Download</a></div>'
        )
    else:  # 16.0 and 17.0: the amount due while one is left, the total once paid
        shown = money(invoice.amount_residual if invoice.amount_residual > 0 else invoice.amount_total)
        link = f'href="{pdf}" title="Download"><i class="fa fa-download"></i> Download</a>'
        if version == "17.0":
            title = f"<h2><span>{shown}</span></h2>"
            download = (
                '<div class="o_download_pdf d-flex gap-1 flex-lg-column flex-xl-row"><div class="flex-grow-1">'
                f'<a class="btn btn-secondary d-block o_download_btn" {link}</div></div>'
            )
        else:  # 16.0: in bold; Download and Print side by side in a toolbar
            title = f'<h2 class="mb-0"><b>{shown}</b></h2>'
            printed = pdf.replace("&amp;download=true", "")
            download = (
                '<div class="o_download_pdf btn-toolbar flex-sm-nowrap"><div class="btn-group  flex-grow-1 me-1 mb-1">'
                f'<a class="btn btn-secondary btn-block o_download_btn" {link}</div><div class="btn-group flex-grow-1 mb-1">'
                f'<a class="btn btn-secondary btn-block o_print_btn o_portal_invoice_print" href="{printed}" '
                'id="print_invoice_report" title="Print" target="_blank"><i class="fa fa-print"></i> Print</a></div></div>'
            )
    if version == "16.0":  # portal.portal_record_sidebar (a card), portal_layout's bordered breadcrumbs
        return _invoice_page_16(company, user, invoice, title, download, html_report)
    sidebar = (
        '<div class="d-flex col-lg-4 col-xxl-3 d-print-none"><div class="o_portal_sidebar_content flex-grow-1 mb-4 mb-lg-0 pe-lg-4" '
        f'id="sidebar_content"><div class="position-relative d-flex align-items-center justify-content-md-center '
        f'justify-content-lg-between flex-wrap gap-2">{title}</div><div class="d-flex flex-column gap-4 mt-3">{download}</div>'
        f"{powered}</div>{rule}</div>"
    )
    content = (
        '<div id="invoice_content" class="o_portal_content col-12 col-lg-8 col-xxl-9">'
        '<div class="o_portal_html_view position-relative bg-white shadow overflow-hidden">'
        f'<iframe id="invoice_html" class="position-relative d-block" width="100%" height="100%" frameborder="0" scrolling="no" '
        f'src="{html_report}"></iframe></div></div>'
    )
    return _invoice_frame(version, company, user, invoice, sidebar + content)


def _invoice_page_16(company: str, user: str | None, invoice: OdooInvoice, title: str, download: str, report: str) -> str:
    sidebar = (
        '<div class="col-lg-auto d-print-none"><div class="card bg-white mb-4 sticky-top" id="sidebar_content">'
        f'<div class="card-body text-center pb-2 pt-3">{title}</div>'
        '<ul class="list-group list-group-flush flex-wrap flex-row flex-lg-column">'
        f'<li class="list-group-item flex-grow-1">{download}</li></ul>'
        '<div class="card-footer small text-center text-muted border-top-0 pt-1 pb-1 d-none d-lg-block">Powered by '
        '<a target="_blank" href="http://www.odoo.com?utm_source=db&amp;utm_medium=portal" title="odoo">'
        '<img src="/web/static/img/logo.png" alt="Odoo Logo" height="15"/></a></div></div></div>'
    )
    content = (
        '<div id="invoice_content" class="col-12 col-lg"><div class="o_portal_html_view shadow p-3">'
        f'<iframe id="invoice_html" class="mt8 mb8" width="100%" height="100%" frameborder="0" scrolling="no" src="{report}">'
        "</iframe></div></div>"
    )
    return _invoice_frame("16.0", company, user, invoice, sidebar + content)


def _invoice_frame(version: str, company: str, user: str | None, invoice: OdooInvoice, inside: str) -> str:
    """``portal.portal_layout`` around an invoice: the breadcrumbs (16.0: in a bordered row), then sidebar and report."""
    if version == "16.0":
        frame, ol, link, container, row = (
            ('<div class="row align-items-center bg-white g-0 border rounded"><div class="col-10">', "</div></div>"),
            "mb-0 py-2 flex-grow-1", "breadcrumb-item ", "container mb64", "row mt16 o_portal_invoice_sidebar",
        )
    else:
        frame, ol, link, container, row = (
            ('<div class="d-flex justify-content-between align-items-center flex-wrap">', "</div>"),
            "mb-0 flex-grow-1 px-0", "breadcrumb-item", "container pt-3 pb-5", "row o_portal_invoice_sidebar",
        )
    breadcrumb = (
        f'<div class="o_portal container mt-3">{frame[0]}<ol class="o_portal_submenu breadcrumb {ol}"><li class="breadcrumb-item '
        'ms-1"><a href="/my/home" aria-label="Home" title="Home"><i class="fa fa-home"></i></a></li>'
        f'<li class="{link}"><a href="/my/invoices?">Invoices &amp; Bills</a></li>'
        f'<li class="breadcrumb-item active">{escape(invoice.name)}</li></ol>{frame[1]}</div>'
    )
    main = (
        f'{breadcrumb}<div id="wrap" class="o_portal_wrap"><div class="{container}"><div class="container o_portal_sidebar">'
        f'<div class="{row}">{inside}</div></div></div></div>'
    )
    return layout(invoice.name, main, user=user, company=company)


def invoice_report_html(company: str, invoice: OdooInvoice) -> str:
    """``report_type=html``: the invoice as the iframe shows it (number, lines, total)."""
    rows = "".join(
        f"<tr><td>{escape(line.label)}</td><td class='text-end'>{line.quantity}</td>"
        f"<td class='text-end o_price_total'>{money(line.total)}</td></tr>"
        for line in invoice.invoice.lines
    )
    body = (
        f'<div class="article o_report_layout_standard"><div class="page"><h2><span>Invoice</span> <span>{escape(invoice.name)}</span></h2>'
        f'<table class="table table-sm o_main_table table-borderless" name="invoice_line_table"><tbody class="invoice_tbody">{rows}'
        f'</tbody></table><div id="total"><table class="table table-sm table-borderless"><tr class="border-black o_total">'
        f'<td><strong>Total</strong></td><td class="text-end"><span>{money(invoice.amount_total)}</span></td></tr></table></div></div></div>'
    )
    return f'<!DOCTYPE html>\n<html lang="fr-FR"><head><meta charset="utf-8"/><title>{escape(company)}</title></head><body class="container">{body}</body></html>'
