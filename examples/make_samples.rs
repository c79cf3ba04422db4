//! Rebuilds the sample input files in `samples/` exactly as `docs/samples-spec.md` describes.
//!
//! ```text
//! cargo run --example make_samples            # writes into samples/
//! cargo run --example make_samples -- DIR     # writes into DIR
//! ```

use std::path::{Path, PathBuf};

use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, XlsxError};

/// (Employee ID, First name, Last name, Work email, Department, Start date (y, m, d), Manager)
type Starter = (
    u32,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    (u16, u8, u8),
    &'static str,
);

const STARTERS: &[Starter] = &[
    (
        10231,
        "Zoë",
        "Lindqvist",
        "zoe.lindqvist@northwind.example",
        "Finance",
        (2026, 11, 2),
        "Nadia Haddad",
    ),
    (
        10232,
        "Mathéo",
        "Durand",
        "MATHEO.DURAND@NORTHWIND.EXAMPLE",
        "Sales",
        (2026, 11, 2),
        "Kenji Tanaka",
    ),
    (
        10233,
        "Agot",
        "Sørensen",
        "agot.sorensen@northwind.example",
        "IT",
        (2026, 11, 3),
        "Priya Raman",
    ),
    (
        10234,
        "Liam",
        "O'Connor",
        "liam.o'connor@northwind.example",
        "Legal",
        (2026, 11, 3),
        "Nadia Haddad",
    ),
    (
        10235,
        "Priya",
        "Raman",
        "priya.raman@northwind.example",
        "IT",
        (2026, 11, 4),
        "Kenji Tanaka",
    ),
    (
        10236,
        "Hyper",
        "Link",
        "hyper.link@northwind.example",
        "Marketing",
        (2026, 11, 4),
        "Kenji Tanaka",
    ),
    (
        10237,
        "Jürgen",
        "Weiß",
        "juergen.weiss@northwind.example",
        "Operations",
        (2026, 11, 9),
        "Priya Raman",
    ),
    (
        10238,
        "Amara",
        "Okafor",
        "amara.okafor@northwind.example",
        "Finance",
        (2026, 11, 9),
        "Nadia Haddad",
    ),
    (
        10239,
        "Sam",
        "Lee",
        "sam.lee@fabrikam.example",
        "Partner (Fabrikam)",
        (2026, 11, 10),
        "Kenji Tanaka",
    ),
    (
        10240,
        "Oskar",
        "Berg",
        "oskar.berg@northwind.example",
        "Sales",
        (2026, 11, 16),
        "Kenji Tanaka",
    ),
    (
        10241,
        "Kenji",
        "Tanaka",
        "kenji.tanaka@northwind.example",
        "Sales",
        (2026, 11, 16),
        "Nadia Haddad",
    ),
    (
        10231,
        "Zoë",
        "Lindqvist",
        "zoe.lindqvist@northwind.example",
        "Finance",
        (2026, 11, 2),
        "Nadia Haddad",
    ),
    (
        10242,
        "Front",
        "Desk",
        "info@northwind.example",
        "Reception",
        (2026, 11, 17),
        "Priya Raman",
    ),
    (
        10243,
        "Noor",
        "Aziz",
        "TBC",
        "Warehouse",
        (2026, 11, 23),
        "Priya Raman",
    ),
    (
        10244,
        "Break",
        "Glass 01",
        "breakglass01@northwind.example",
        "IT",
        (2026, 11, 23),
        "Priya Raman",
    ),
];

fn new_starters(path: &Path) -> Result<(), XlsxError> {
    let mut wb = Workbook::new();
    // A fixed creation time, so that rebuilding gives the same bytes.
    let created = ExcelDateTime::from_ymd(2026, 11, 2)?.and_hms(9, 0, 0)?;
    wb.set_properties(
        &DocProperties::new()
            .set_title("New starters, November 2026")
            .set_author("People Team")
            .set_company("Northwind Traders")
            .set_creation_datetime(&created),
    );
    let bold = Format::new().set_bold();
    let title = Format::new().set_bold().set_font_size(14);
    let date = Format::new().set_num_format("yyyy-mm-dd");

    let ws = wb.add_worksheet();
    ws.set_name("New starters")?;
    ws.write_string_with_format(
        0,
        0,
        "Northwind Traders — New starters, November 2026",
        &title,
    )?;
    ws.write_string(1, 0, "Prepared by People Team · Confidential")?;
    let headers = [
        "Employee ID",
        "First name",
        "Last name",
        "Work email",
        "Department",
        "Start date",
        "Manager",
    ];
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(3, c as u16, *h, &bold)?;
    }
    for (i, (id, first, last, email, dept, (y, m, d), manager)) in STARTERS.iter().enumerate() {
        let r = 4 + i as u32;
        ws.write_number(r, 0, *id)?;
        ws.write_string(r, 1, *first)?;
        ws.write_string(r, 2, *last)?;
        ws.write_string(r, 3, *email)?;
        ws.write_string(r, 4, *dept)?;
        ws.write_datetime_with_format(r, 5, ExcelDateTime::from_ymd(*y, *m, *d)?, &date)?;
        ws.write_string(r, 6, *manager)?;
    }
    for (c, w) in [12.0, 12.0, 12.0, 36.0, 18.0, 12.0, 16.0]
        .iter()
        .enumerate()
    {
        ws.set_column_width(c as u16, *w)?;
    }

    let ws = wb.add_worksheet();
    ws.set_name("Leavers")?;
    for (c, h) in ["Name", "UPN", "Last day"].iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    let leavers = [
        (
            "Nadia Haddad",
            "nadia.haddad@northwind.example",
            (2026, 11, 30),
        ),
        (
            "Old Account",
            "old.account@northwind.example",
            (2026, 10, 31),
        ),
    ];
    for (i, (name, upn, (y, m, d))) in leavers.iter().enumerate() {
        let r = 1 + i as u32;
        ws.write_string(r, 0, *name)?;
        ws.write_string(r, 1, *upn)?;
        ws.write_datetime_with_format(r, 2, ExcelDateTime::from_ymd(*y, *m, *d)?, &date)?;
    }
    ws.set_column_width(1, 36.0)?;
    wb.save(path)
}

const LEGACY: &str = "Username,MFA Status\r\n\
zoe.lindqvist@northwind.example,Enabled\r\n\
matheo.durand@northwind.example,enforced\r\n\
kenji.tanaka@northwind.example,Enforced\r\n\
nadia.haddad@northwind.example,Disabled\r\n\
$svc-scanner@northwind.example,Enabled\r\n";

const TEMPLATE: &str = "version:v1.0\r\n\
Name [displayName] Required,User name [userPrincipalName] Required,Initial password [passwordProfile] Required,Block sign in (Yes/No) [accountEnabled] Required\r\n\
Agot Sørensen,agot.sorensen@northwind.example,Set-by-IT-1,No\r\n\
Liam O'Connor,liam.o'connor@northwind.example,Set-by-IT-2,No\r\n\
Jürgen Weiß,juergen.weiss@northwind.example,Set-by-IT-3,No\r\n";

const EXCLUSIONS: &str = "UserPrincipalName\r\n\
breakglass01@northwind.example\r\n\
breakglass02@northwind.example\r\n";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("samples"));
    std::fs::create_dir_all(&dir)?;
    new_starters(&dir.join("new-starters.xlsx"))?;
    std::fs::write(dir.join("legacy-portal-bulk.csv"), LEGACY)?;
    std::fs::write(dir.join("entra-bulk-template.csv"), TEMPLATE)?;
    std::fs::write(dir.join("exclusions.csv"), EXCLUSIONS)?;
    println!("wrote the sample files into {}", dir.display());
    Ok(())
}
