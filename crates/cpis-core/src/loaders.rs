//! Loaders for the reference data files: the LA and care-setting directories and the
//! demographics extract. A file is checked whole before anything is stored: one bad line and the
//! load is refused with that line's number and reason.

use cpis_domain::{
    parse_iso_date, CareSetting, DemographicStatus, Demographics, LocalAuthority, NhsNumber,
    OdsCode, OfficeHours, PhoneNumber, SettingType, DEFAULT_OFFICE_HOURS,
};
use std::collections::HashSet;
use std::io::Read;

pub const LOCAL_AUTHORITY_HEADER: [&str; 7] = [
    "ods_code",
    "name",
    "office_hours_phone",
    "edt_phone",
    "secure_email",
    "mesh_mailbox",
    "office_hours",
];
/// The LA file as it was before office hours: still accepted, every LA getting
/// [`DEFAULT_OFFICE_HOURS`].
const LOCAL_AUTHORITY_HEADER_WITHOUT_HOURS: [&str; 6] = [
    "ods_code",
    "name",
    "office_hours_phone",
    "edt_phone",
    "secure_email",
    "mesh_mailbox",
];
/// `phone`: the number an LA rings back (the department's or its safeguarding team's), optional
/// per row. Files without the column (the header before it) still load, with no numbers.
pub const CARE_SETTING_HEADER: [&str; 4] = ["ods_code", "name", "setting_type", "phone"];
const CARE_SETTING_HEADER_WITHOUT_PHONE: [&str; 3] = ["ods_code", "name", "setting_type"];
pub const DEMOGRAPHICS_HEADER: [&str; 5] = [
    "nhs_number",
    "status",
    "superseded_by",
    "date_of_birth",
    "sensitive",
];
/// The demographics header with the optional last column of newborn registrations: the
/// mother's NHS number (births to mothers on an unborn child protection plan).
pub const DEMOGRAPHICS_HEADER_WITH_MOTHER: [&str; 6] = [
    "nhs_number",
    "status",
    "superseded_by",
    "date_of_birth",
    "sensitive",
    "mother_nhs_number",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("header must be '{expected}'")]
    BadHeader { expected: String },
    #[error("line {line}: {message}")]
    Line { line: u64, message: String },
    #[error("could not read the file: {0}")]
    Read(String),
}

fn line_err(line: u64, message: impl Into<String>) -> LoadError {
    LoadError::Line {
        line,
        message: message.into(),
    }
}

/// Reads a CSV whose header is exactly one of `headers` (the first is the current one, named in
/// the error; the others are older layouts still accepted); each line must have as many fields
/// as the header it has.
fn read_csv_headers<R: Read, T>(
    input: R,
    headers: &[&[&str]],
    mut row: impl FnMut(u64, &csv::StringRecord) -> Result<T, String>,
) -> Result<Vec<T>, LoadError> {
    let expected = || LoadError::BadHeader {
        expected: headers.first().map_or_else(String::new, |h| h.join(",")),
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut records = rdr.records();
    let first = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(LoadError::Read(e.to_string())),
        None => return Err(expected()),
    };
    let got: Vec<String> = first
        .iter()
        .map(|f| f.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
        .collect();
    let Some(header) = headers.iter().find(|h| got == **h) else {
        return Err(expected());
    };
    let mut out = Vec::new();
    for rec in records {
        let rec = rec.map_err(|e| match e.position() {
            Some(p) => line_err(p.line(), e.to_string()),
            None => LoadError::Read(e.to_string()),
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() == 1 && rec[0].trim().is_empty() {
            continue;
        }
        if rec.len() != header.len() {
            return Err(line_err(
                line,
                format!("expected {} fields, found {}", header.len(), rec.len()),
            ));
        }
        out.push(row(line, &rec).map_err(|m| line_err(line, m))?);
    }
    Ok(out)
}

fn required(v: &str, what: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() {
        Err(format!("{what} is required"))
    } else {
        Ok(v.to_owned())
    }
}

fn optional(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

fn ods(v: &str) -> Result<OdsCode, String> {
    OdsCode::parse(v).map_err(|e| e.to_string())
}

fn unique<T, K: std::hash::Hash + Eq>(
    items: &[T],
    key: impl Fn(&T) -> K,
    what: &str,
) -> Result<(), LoadError> {
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(key(item)) {
            return Err(line_err(i as u64 + 2, format!("duplicate {what}")));
        }
    }
    Ok(())
}

/// Office hours as the LA file gives them: empty (or no column) is [`DEFAULT_OFFICE_HOURS`].
fn office_hours(v: Option<&str>) -> Result<OfficeHours, String> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(OfficeHours::standard()),
        Some(v) => OfficeHours::parse(v).map_err(|e| {
            format!("office_hours: {e} (for example '{DEFAULT_OFFICE_HOURS}', or several separated by ';')")
        }),
    }
}

pub fn parse_local_authorities<R: Read>(input: R) -> Result<Vec<LocalAuthority>, LoadError> {
    let headers: [&[&str]; 2] = [
        &LOCAL_AUTHORITY_HEADER,
        &LOCAL_AUTHORITY_HEADER_WITHOUT_HOURS,
    ];
    let las = read_csv_headers(input, &headers, |_, r| {
        Ok(LocalAuthority {
            ods_code: ods(&r[0])?,
            name: required(&r[1], "name")?,
            office_hours_phone: required(&r[2], "office_hours_phone")?,
            edt_phone: required(&r[3], "edt_phone (emergency duty team)")?,
            office_hours: office_hours(r.get(6))?,
            secure_email: optional(&r[4]),
            mesh_mailbox: optional(&r[5]).map(|m| m.to_ascii_uppercase()),
        })
    })?;
    unique(&las, |l| l.ods_code.clone(), "ods_code")?;
    Ok(las)
}

pub fn parse_care_settings<R: Read>(input: R) -> Result<Vec<CareSetting>, LoadError> {
    let headers: [&[&str]; 2] = [&CARE_SETTING_HEADER, &CARE_SETTING_HEADER_WITHOUT_PHONE];
    let settings = read_csv_headers(input, &headers, |_, r| {
        Ok(CareSetting {
            ods_code: ods(&r[0])?,
            name: required(&r[1], "name")?,
            setting_type: r[2]
                .parse::<SettingType>()
                .map_err(|_| format!("unknown setting_type '{}'", r[2].trim()))?,
            phone: r
                .get(3)
                .and_then(optional)
                .map(|p| PhoneNumber::parse(&p).map_err(|e| format!("phone '{p}': {e}")))
                .transpose()?,
        })
    })?;
    unique(&settings, |s| s.ods_code.clone(), "ods_code")?;
    Ok(settings)
}

/// A demographics extract or change file: `nhs_number,status,superseded_by,date_of_birth,sensitive`
/// and optionally `mother_nhs_number` (newborn registrations). `status` is `active`,
/// `superseded` (with `superseded_by`), `inactive` or `invalidated-adoption`; the latter's
/// `superseded_by` (a new number the national feed may carry) is ignored and never stored.
pub fn parse_demographics<R: Read>(input: R) -> Result<Vec<Demographics>, LoadError> {
    let headers: [&[&str]; 2] = [&DEMOGRAPHICS_HEADER_WITH_MOTHER, &DEMOGRAPHICS_HEADER];
    let entries = read_csv_headers(input, &headers, |_, r| {
        let nhs = NhsNumber::parse(&r[0]).map_err(|e| format!("nhs_number: {e}"))?;
        let status_code = r[1].trim().to_ascii_lowercase();
        // A new number given with an adoption invalidation is never read: linking it to the
        // birth identity is what must not happen.
        let by = match status_code.as_str() {
            "invalidated-adoption" => None,
            _ => optional(&r[2])
                .map(|s| NhsNumber::parse(&s).map_err(|e| format!("superseded_by: {e}")))
                .transpose()?,
        };
        let mother = match r.get(5).and_then(optional) {
            None => None,
            Some(m) => {
                let m = NhsNumber::parse(&m).map_err(|e| format!("mother_nhs_number: {e}"))?;
                if m == nhs {
                    return Err("mother_nhs_number must differ from nhs_number".into());
                }
                Some(m)
            }
        };
        let status = match (status_code.as_str(), by) {
            ("active", None) => DemographicStatus::Active,
            ("inactive", None) => DemographicStatus::Inactive,
            ("invalidated-adoption", _) => DemographicStatus::InvalidatedAdoption,
            ("superseded", Some(n)) if n != nhs => DemographicStatus::Superseded(n),
            ("superseded", _) => {
                return Err("superseded needs a different superseded_by number".into())
            }
            ("active" | "inactive", Some(_)) => {
                return Err("superseded_by is only for status superseded".into())
            }
            (s, _) => return Err(format!("unknown status '{s}'")),
        };
        let sensitive = match r[4].trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" | "" => false,
            s => return Err(format!("sensitive must be true or false, found '{s}'")),
        };
        Ok(Demographics {
            nhs_number: nhs,
            status,
            date_of_birth: parse_iso_date(&r[3]).map_err(|e| format!("date_of_birth: {e}"))?,
            sensitive,
            mother_nhs_number: mother,
        })
    })?;
    unique(&entries, |d| d.nhs_number, "nhs_number")?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let csv = "nhs_number,status,superseded_by,date_of_birth,sensitive\n9434765919,active,,2015-01-01,false\n9434765918,active,,2015-01-01,false\n";
        assert_eq!(
            parse_demographics(csv.as_bytes()),
            Err(LoadError::Line {
                line: 3,
                message: "nhs_number: NHS number has an invalid check digit".into()
            })
        );
        let csv = "nhs_number,status,superseded_by,date_of_birth,sensitive\n9434765919,superseded,,2015-01-01,false\n";
        assert!(matches!(
            parse_demographics(csv.as_bytes()),
            Err(LoadError::Line { line: 2, .. })
        ));
        assert!(matches!(
            parse_demographics(&b"a,b\n"[..]),
            Err(LoadError::BadHeader { .. })
        ));
    }

    const WITH_MOTHER: &str =
        "nhs_number,status,superseded_by,date_of_birth,sensitive,mother_nhs_number\n";

    #[test]
    fn newborn_registrations_may_name_their_mother() {
        let csv = format!(
            "{WITH_MOTHER}9434765919,active,,2026-10-31,false,9434765870\n4010232137,active,,2015-01-01,false,\n"
        );
        let entries = parse_demographics(csv.as_bytes()).unwrap();
        assert_eq!(
            entries[0].mother_nhs_number,
            Some(NhsNumber::parse("9434765870").unwrap())
        );
        assert_eq!(entries[1].mother_nhs_number, None);
        // The five-column file is still read as before.
        let old = "nhs_number,status,superseded_by,date_of_birth,sensitive\n9434765919,active,,2015-01-01,false\n";
        assert_eq!(
            parse_demographics(old.as_bytes()).unwrap()[0].mother_nhs_number,
            None
        );
    }

    #[test]
    fn a_bad_mother_number_refuses_the_whole_file_with_its_line() {
        let bad_digit = format!(
            "{WITH_MOTHER}4010232137,active,,2015-01-01,false,\n9434765919,active,,2026-10-31,false,9434765871\n"
        );
        assert_eq!(
            parse_demographics(bad_digit.as_bytes()),
            Err(LoadError::Line {
                line: 3,
                message: "mother_nhs_number: NHS number has an invalid check digit".into()
            })
        );
        let herself = format!("{WITH_MOTHER}9434765919,active,,2026-10-31,false,9434765919\n");
        assert_eq!(
            parse_demographics(herself.as_bytes()),
            Err(LoadError::Line {
                line: 2,
                message: "mother_nhs_number must differ from nhs_number".into()
            })
        );
        let short = format!("{WITH_MOTHER}9434765919,active,,2026-10-31,false\n");
        assert!(matches!(
            parse_demographics(short.as_bytes()),
            Err(LoadError::Line { line: 2, .. })
        ));
        let header = "nhs_number,status,superseded_by,date_of_birth,sensitive,mother\n";
        assert_eq!(
            parse_demographics(header.as_bytes()),
            Err(LoadError::BadHeader {
                expected: DEMOGRAPHICS_HEADER_WITH_MOTHER.join(",")
            })
        );
    }

    #[test]
    fn an_adoption_invalidation_never_keeps_the_new_number() {
        let csv = "nhs_number,status,superseded_by,date_of_birth,sensitive\n9434765919,invalidated-adoption,9434765870,2015-01-01,false\n4010232137,Invalidated-Adoption,,2015-01-01,false\n";
        let entries = parse_demographics(csv.as_bytes()).unwrap();
        assert_eq!(entries[0].status, DemographicStatus::InvalidatedAdoption);
        assert_eq!(entries[1].status, DemographicStatus::InvalidatedAdoption);
        assert!(!format!("{entries:?}").contains("9434765870"));
        let unknown = "nhs_number,status,superseded_by,date_of_birth,sensitive\n9434765919,adopted,,2015-01-01,false\n";
        assert_eq!(
            parse_demographics(unknown.as_bytes()),
            Err(LoadError::Line {
                line: 2,
                message: "unknown status 'adopted'".into()
            })
        );
    }

    #[test]
    fn las_need_an_emergency_duty_number() {
        let csv = "ods_code,name,office_hours_phone,edt_phone,secure_email,mesh_mailbox\nE08000026,Coventry,01632 960000,,,\n";
        assert!(matches!(
            parse_local_authorities(csv.as_bytes()),
            Err(LoadError::Line { line: 2, .. })
        ));
    }

    #[test]
    fn care_setting_phones_parse_or_are_refused_with_their_line() {
        let csv = "ods_code,name,setting_type,phone\nRX1,City ED,emergency-department,01632 960100\nRX2,Town GP,gp,\nRX3,Port UTC,urgent-treatment-centre,+44 1632 960300\n";
        let settings = parse_care_settings(csv.as_bytes()).unwrap();
        let phones: Vec<_> = settings
            .iter()
            .map(|s| s.phone.as_ref().map(|p| p.tel_uri()))
            .collect();
        assert_eq!(
            phones,
            [
                Some("tel:+441632960100".to_owned()),
                None,
                Some("tel:+441632960300".to_owned())
            ]
        );
        let csv = "ods_code,name,setting_type,phone\nRX1,City ED,emergency-department,01632 960100\nRX2,Town ED,emergency-department,ring switchboard\n";
        assert_eq!(
            parse_care_settings(csv.as_bytes()),
            Err(LoadError::Line {
                line: 3,
                message: "phone 'ring switchboard': phone number may contain only digits, spaces, hyphens, brackets and a leading +".into()
            })
        );
        let csv = "ods_code,name,setting_type,phone\nRX1,City ED,emergency-department,0163 296\n";
        assert_eq!(
            parse_care_settings(csv.as_bytes()),
            Err(LoadError::Line {
                line: 2,
                message: "phone '0163 296': a UK phone number starts with 0 and has 10 or 11 digits, found 7 digits".into()
            })
        );
        // A file from before the phone column still loads, without numbers.
        let csv = "ods_code,name,setting_type\nRX1,City ED,emergency-department\n";
        assert_eq!(parse_care_settings(csv.as_bytes()).unwrap()[0].phone, None);
        // The header names the current columns.
        assert_eq!(
            parse_care_settings(&b"ods_code,name\n"[..]),
            Err(LoadError::BadHeader {
                expected: "ods_code,name,setting_type,phone".into()
            })
        );
    }

    #[test]
    fn office_hours_are_read_defaulted_or_refused_by_line() {
        let csv =
            "ods_code,name,office_hours_phone,edt_phone,secure_email,mesh_mailbox,office_hours\n\
            E08000026,Coventry,01632 960000,020 7946 0000,,,Mon-Thu 08:30-17:00; Fri 08:30-16:30\n\
            E09000001,City of London,01632 960001,020 7946 0001,,,\n";
        let las = parse_local_authorities(csv.as_bytes()).unwrap();
        assert_eq!(
            las[0].office_hours.to_string(),
            "Mon-Thu 08:30-17:00; Fri 08:30-16:30"
        );
        assert_eq!(las[1].office_hours, OfficeHours::standard());
        // The file without the column: every LA has the standard hours.
        let csv = "ods_code,name,office_hours_phone,edt_phone,secure_email,mesh_mailbox\n\
            E08000026,Coventry,01632 960000,020 7946 0000,,\n";
        let las = parse_local_authorities(csv.as_bytes()).unwrap();
        assert_eq!(las[0].office_hours.to_string(), DEFAULT_OFFICE_HOURS);
        // A bad value on line 3 refuses the whole file, naming the line and the fault.
        let csv =
            "ods_code,name,office_hours_phone,edt_phone,secure_email,mesh_mailbox,office_hours\n\
            E08000026,Coventry,01632 960000,020 7946 0000,,,Mon-Fri 09:00-17:00\n\
            E09000001,City of London,01632 960001,020 7946 0001,,,Mon-Fri 9am-5pm\n";
        assert_eq!(
            parse_local_authorities(csv.as_bytes()),
            Err(LoadError::Line {
                line: 3,
                message: "office_hours: '9am' is not a time of day as HH:MM (for example 'Mon-Fri 09:00-17:00', or several separated by ';')".into()
            })
        );
        // A line short of the header's fields is refused, not read as having no hours.
        let csv =
            "ods_code,name,office_hours_phone,edt_phone,secure_email,mesh_mailbox,office_hours\n\
            E08000026,Coventry,01632 960000,020 7946 0000,,\n";
        assert!(matches!(
            parse_local_authorities(csv.as_bytes()),
            Err(LoadError::Line { line: 2, .. })
        ));
        assert_eq!(
            parse_local_authorities(&b"ods_code,name\n"[..]),
            Err(LoadError::BadHeader {
                expected: LOCAL_AUTHORITY_HEADER.join(",")
            })
        );
    }

    #[test]
    fn duplicate_codes_are_refused() {
        let csv = "ods_code,name,setting_type\nRX1,A,gp\nRX1,B,gp\n";
        assert!(matches!(
            parse_care_settings(csv.as_bytes()),
            Err(LoadError::Line { line: 3, .. })
        ));
    }
}
