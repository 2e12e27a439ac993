//! The query string, parsed once: pairs in order, percent-decoded, looked up as ASP.NET Core
//! does.

use crate::errors::Problem;

/// Query parameters in order, percent-decoded (`+` is a space), looked up by name
/// case-insensitively — as ASP.NET Core, so `?Key=` and `?Code=` work as in the original.
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Refuses a query that is not UTF-8 after percent-decoding (a 400, never a U+FFFD
    /// replacement that would make `%FF` and `%FE` name the same blob).
    pub(crate) fn parse(raw: &str) -> Result<Query, Problem> {
        crate::wire::urlenc::parse_query(raw)
            .map(|pairs| Query { pairs })
            .map_err(|n| {
                Problem::bad_request(
                    "invalid-encoding",
                    format!("query parameter {n} is not UTF-8 after percent-decoding"),
                )
            })
    }

    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Exactly one value, or a 400 naming the parameter.
    pub(crate) fn required(&self, name: &str) -> Result<String, Problem> {
        match self.optional(name)? {
            Some(v) => Ok(v),
            None => Err(Problem::bad_request(
                "missing-parameter",
                format!("query parameter '{name}' is required"),
            )),
        }
    }

    /// At most one value.
    pub(crate) fn optional(&self, name: &str) -> Result<Option<String>, Problem> {
        match self.all(name).as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.to_string())),
            _ => Err(Problem::bad_request(
                "duplicate-parameter",
                format!("query parameter '{name}' is given more than once"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_and_detects_duplicates() {
        let q = Query::parse("key=a%2Db&version=&x=1&X=2&blob=a+b").unwrap();
        assert_eq!(q.required("key").unwrap(), "a-b");
        assert_eq!(q.optional("version").unwrap().as_deref(), Some(""));
        assert_eq!(q.required("x").unwrap_err().code, "duplicate-parameter");
        assert_eq!(q.required("nope").unwrap_err().code, "missing-parameter");
        assert_eq!(q.required("blob").unwrap(), "a b");
        assert_eq!(q.required("KEY").unwrap(), "a-b");
        assert_eq!(
            Query::parse("blob=%FF").err().unwrap().code,
            "invalid-encoding"
        );
    }
}
