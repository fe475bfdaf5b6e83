// SPDX-License-Identifier: Apache-2.0
//
// Policy::check_column_types(): `policy check` against a live database's column types. The
// masker gives a text style (partial, format, hash) only to text values, and NULL only
// where the column may be NULL; anything else gets the type's fixed substitute (README,
// "Masking"). A rule that asks for one on such a column says what the results will not look
// like: an error at the rule, naming the column and its type.
#include <string>

#include "policy/glob.h"
#include "policy/policy.h"
#include "policy/rule.h"

namespace dbwarden::policy {

namespace {

bool text_style(masking::Style s) {
  return s == masking::Style::kPartial || s == masking::Style::kFormat ||
         s == masking::Style::kHash;
}

std::string qualified(const DbColumn& c) { return c.schema + "." + c.table + "." + c.column; }

}  // namespace

ColumnTypeReport Policy::check_column_types(std::span<const DbColumn> columns) const {
  ColumnTypeReport report;
  std::vector<bool> named(columns.size(), false);
  for (const std::unique_ptr<Rule>& r : mask_rules_) {
    const MaskRule& m = *r->mask;
    const std::string at = name_ + ":" + std::to_string(r->line) + ":" + std::to_string(r->column) +
                           ": mask rule \"" + r->name + "\": ";
    const std::string_view style = masking::style_name(m.style);
    for (size_t e = 0; e < m.columns.size(); ++e) {
      const std::vector<std::string>& p = m.columns[e];
      if (p.size() != 3) continue;
      size_t matched = 0;
      for (size_t i = 0; i < columns.size(); ++i) {
        const DbColumn& c = columns[i];
        if (!glob_match(p[0], c.schema, true) || !glob_match(p[1], c.table, true) ||
            !glob_match(p[2], c.column, true)) {
          continue;
        }
        ++matched;
        named[i] = true;
        if (text_style(m.style) && !c.text) {
          report.errors.push_back(at + "style `" + std::string(style) + "` cannot apply to " +
                                  qualified(c) + " of type " + c.type +
                                  ": it masks text only (this column would get its type's "
                                  "fixed substitute); use `full` or `null`, or narrow `" +
                                  m.column_texts[e] + "`");
        } else if (m.style == masking::Style::kNull && c.not_null) {
          report.errors.push_back(at + "style `null` cannot apply to " + qualified(c) +
                                  " of type " + c.type +
                                  " NOT NULL: it cannot be NULL (it would get " +
                                  (c.text ? "the empty string" : "its type's fixed substitute") +
                                  "); use another style, or narrow `" + m.column_texts[e] + "`");
        }
      }
      if (matched == 0) {
        report.warnings.push_back(at + "warning: `" + m.column_texts[e] +
                                  "` names no column of the database checked");
      }
    }
  }
  for (const bool n : named) report.columns_checked += n ? 1 : 0;
  return report;
}

}  // namespace dbwarden::policy
