//! Result files (CSV, XLSX), the run record beside them, the notify list, and reading an
//! earlier result file back for `--plan` and `revert`.
