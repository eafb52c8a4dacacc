//! Invoices as PDF documents (printpdf, with a built-in font: no font files to ship).

use crate::error::{ApiError, ApiResult};
use domain::billing::{BillingInfo, Invoice, InvoiceStatus};
use printpdf::{BuiltinFont, Mm, PdfDocument};

fn money(cents: u64) -> String {
    format!("{}.{:02} USD", cents / 100, cents % 100)
}

/// One A4 page: who bills whom, the lines, the total, the status.
pub fn invoice(org_name: &str, info: &BillingInfo, inv: &Invoice) -> ApiResult<Vec<u8>> {
    let (doc, page, layer) = PdfDocument::new(
        format!("Invoice {}", inv.number),
        Mm(210.0),
        Mm(297.0),
        "main",
    );
    let font = doc
        .add_builtin_font(BuiltinFont::Helvetica)
        .map_err(ApiError::internal)?;
    let bold = doc
        .add_builtin_font(BuiltinFont::HelveticaBold)
        .map_err(ApiError::internal)?;
    let l = doc.get_page(page).get_layer(layer);
    let date = |t: time::OffsetDateTime| {
        format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
    };
    let mut y = 270.0;
    l.use_text(
        format!("Invoice {}", inv.number),
        20.0,
        Mm(20.0),
        Mm(y),
        &bold,
    );
    y -= 10.0;
    l.use_text("Orgline", 11.0, Mm(20.0), Mm(y), &font);
    y -= 10.0;
    let bill_to = info.company.clone().unwrap_or_else(|| org_name.to_owned());
    l.use_text(format!("Bill to: {bill_to}"), 11.0, Mm(20.0), Mm(y), &font);
    for extra in [&info.address, &info.tax_id, &info.email]
        .into_iter()
        .flatten()
    {
        y -= 6.0;
        l.use_text(extra.as_str(), 10.0, Mm(38.0), Mm(y), &font);
    }
    y -= 10.0;
    let status = match inv.status {
        InvoiceStatus::Open => "open",
        InvoiceStatus::Paid => "paid",
        InvoiceStatus::Void => "void",
    };
    l.use_text(
        format!(
            "Issued {}   Due {}   Status {status}",
            date(inv.issued_at()),
            date(inv.due_at)
        ),
        10.0,
        Mm(20.0),
        Mm(y),
        &font,
    );
    y -= 14.0;
    for (x, h) in [
        (20.0, "Description"),
        (120.0, "Qty"),
        (140.0, "Unit"),
        (170.0, "Amount"),
    ] {
        l.use_text(h, 10.0, Mm(x), Mm(y), &bold);
    }
    for line in &inv.lines {
        y -= 7.0;
        let d: String = line.description.chars().take(60).collect();
        l.use_text(d, 10.0, Mm(20.0), Mm(y), &font);
        l.use_text(line.quantity.to_string(), 10.0, Mm(120.0), Mm(y), &font);
        l.use_text(money(line.unit_amount.0), 10.0, Mm(140.0), Mm(y), &font);
        l.use_text(money(line.amount.0), 10.0, Mm(170.0), Mm(y), &font);
        if y < 40.0 {
            break;
        }
    }
    y -= 12.0;
    l.use_text(
        format!("Total {}", money(inv.total.0)),
        12.0,
        Mm(140.0),
        Mm(y),
        &bold,
    );
    doc.save_to_bytes().map_err(ApiError::internal)
}
