//! End to end: the `escrow-ledger` binary as a newcomer and a bank job use it,
//! against a fresh SQLite file and a fresh PostgreSQL database.

use std::path::Path;
use std::process::{Command, Output};

use sqlx::{Connection, Executor, PgConnection};

#[path = "support/scratch_pg.rs"]
mod scratch_pg;
use scratch_pg::ScratchPg;
#[path = "support/served.rs"]
mod served;
use served::Served;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_escrow-ledger"));
    c.env_remove("ESCROW_DATABASE_URL").env("RUST_LOG", "error");
    c
}

fn run(url: &str, args: &[&str]) -> Output {
    let out = bin()
        .arg("--database-url")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    out
}

/// Runs a command that must succeed and prints JSON; its document.
fn run_json(url: &str, args: &[&str]) -> serde_json::Value {
    let out = run(url, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("county.db").display())
}

fn demo_summary(url: &str) -> serde_json::Value {
    let out = run(url, &["demo", "--json"]);
    assert!(out.status.success(), "demo failed: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn check_demo(url: &str) {
    let first = demo_summary(url);
    let institutions = first["institutions"].as_array().unwrap();
    assert_eq!(institutions.len(), 4);
    for i in institutions {
        let running_off = i["id"] == "INS-410922-004";
        // A deposit-mode school owes nothing from supervised money (its
        // fees are outside escrow): no ratio, and no shortfall.
        let Some(ratio) = i["coverage_ratio"].as_str() else {
            assert_eq!(i["mode"], "deposit", "{i}");
            assert!(!running_off);
            continue;
        };
        let ratio: rust_decimal::Decimal = ratio.parse().unwrap();
        assert_eq!(ratio < rust_decimal::Decimal::ONE, running_off, "{i}");
    }
    // The demo is idempotent: a second run replays every request.
    assert_eq!(demo_summary(url), first);
    let verify = run(url, &["verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("4 institutions"),
        "{}",
        stdout(&verify)
    );
}

#[test]
fn the_demo_builds_a_county_whose_books_verify_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check_demo(&sqlite_url(dir.path()));
}

#[tokio::test]
async fn the_demo_builds_a_county_whose_books_verify_on_postgres() {
    let pg = ScratchPg::create(format!("el_test_cli_demo_{}", std::process::id())).await;
    check_demo(&pg.url);
    pg.drop().await;
}

/// Debian's hledger, installed when missing (as scripts/test installs
/// chromium for the console's tests).
fn hledger() -> Command {
    let present = Command::new("hledger").arg("--version").output().is_ok();
    if !present {
        let installed = Command::new("apt-get")
            .args(["install", "-y", "-qq", "hledger"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
            || (Command::new("apt-get")
                .args(["update", "-qq"])
                .status()
                .is_ok()
                && Command::new("apt-get")
                    .args(["install", "-y", "-qq", "hledger"])
                    .status()
                    .is_ok_and(|s| s.success()));
        assert!(installed, "hledger is missing: apt-get install hledger");
    }
    Command::new("hledger")
}

#[test]
fn each_institutions_journal_loads_in_hledger_with_the_ledgers_balances() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    assert!(run(&url, &["demo", "--json"]).status.success());
    for id in [
        "INS-410922-001",
        "INS-410922-002",
        "INS-410922-003",
        "INS-410922-004",
    ] {
        let out = run(&url, &["journal", "--institution", id]);
        assert!(out.status.success(), "{}", stderr(&out));
        let file = dir.path().join(format!("{id}.journal"));
        std::fs::write(&file, &out.stdout).unwrap();
        // hledger loads it (every transaction balances) ...
        let check = hledger()
            .arg("-f")
            .arg(&file)
            .arg("check")
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{id}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        // ... and its cleared balances are the ledger's, account by account.
        let bal = hledger()
            .arg("-f")
            .arg(&file)
            .args(["bal", "--cleared", "--flat", "--no-total", "-O", "csv"])
            .output()
            .unwrap();
        assert!(
            bal.status.success(),
            "{}",
            String::from_utf8_lossy(&bal.stderr)
        );
        let mut theirs = std::collections::BTreeMap::new();
        let text = String::from_utf8(bal.stdout).unwrap();
        for line in text.lines().skip(1) {
            let cells: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
            let amount = cells[1].trim_end_matches(" CNY");
            theirs.insert(
                cells[0].to_string(),
                amount.parse::<rust_decimal::Decimal>().unwrap(),
            );
        }
        let ours = run_json(&url, &["balances", "--institution", id, "--json"]);
        let mut expected = std::collections::BTreeMap::new();
        for a in ours["accounts"].as_array().unwrap() {
            let balance: rust_decimal::Decimal = a["balance"].as_str().unwrap().parse().unwrap();
            if balance.is_zero() {
                continue;
            }
            let (top, sign) = match a["type"].as_str().unwrap() {
                "asset" => ("assets", rust_decimal::Decimal::ONE),
                _ => ("liabilities", rust_decimal::Decimal::NEGATIVE_ONE),
            };
            let name = format!("{top}:{}", a["account"].as_str().unwrap().replace('/', ":"));
            expected.insert(name, balance * sign);
        }
        theirs.retain(|_, v| !v.is_zero());
        assert!(expected.len() > 3, "{id}: {expected:?}");
        assert_eq!(theirs, expected, "{id}");
    }
}

#[test]
fn balances_show_one_institution_now_and_refuse_a_time_before_it_existed() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    let doc = run_json(
        &url,
        &["balances", "--institution", "INS-410922-004", "--json"],
    );
    assert_eq!(doc["id"], "INS-410922-004");
    let accounts = doc["accounts"].as_array().unwrap();
    assert!(accounts
        .iter()
        .any(|a| a["account"] == "held_by_institution" && a["balance"] != "0.00"));

    let out = run(
        &url,
        &[
            "balances",
            "--institution",
            "INS-410922-004",
            "--at",
            "2001-01-01T00:00:00Z",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("did not exist"), "{}", stderr(&out));
    let out = run(&url, &["balances", "--institution", "NOPE"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("institution NOPE does not exist"),
        "{}",
        stderr(&out)
    );
}

fn write(dir: &Path, name: &str, lines: &[&str]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n")).unwrap();
    path.display().to_string()
}

const HEAD: &str =
    r#""institution":"INS-410922-001","currency":"CNY","occurred_at":"2026-08-25T10:00:00Z""#;

#[test]
fn malformed_requests_are_refused_with_their_line_and_code_and_record_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    let before = stdout(&run(&url, &["balances", "--json"]));
    let good = format!(
        r#"{{{HEAD},"client_id":"x-good","op":"record_unidentified_receipt","amount":"10.00"}}"#
    );
    let cases = [
        (format!(r#"{{{HEAD},"client_id":"x1","op":"record_unidentified_receipt","amount":"10.005"}}"#), "too_many_decimals"),
        (format!(r#"{{{HEAD},"client_id":"x1","op":"record_unidentified_receipt","amount":"ten"}}"#), "invalid_amount"),
        (format!(r#"{{{HEAD},"client_id":"x1","op":"consume_lessons","enrollment":"410922-001-E000","hours":-3}}"#), "hours_must_be_positive"),
        (format!(r#"{{{HEAD},"client_id":"x1","op":"pay_tuition","enrollment":"NO-SUCH","amount":"1.00"}}"#), "unknown_enrollment"),
        (
            r#"{"institution":"INS-410922-001","currency":"HKD","occurred_at":"2026-08-25T10:00:00Z","client_id":"x1","op":"pay_in_deposit","amount":"1.00"}"#.to_string(),
            "currency_mismatch",
        ),
        (format!(r#"{{{HEAD},"client_id":"x1","op":"record_unidentified_receipt""#), "malformed_json"),
    ];
    for (bad, code) in cases {
        let file = write(dir.path(), "batch.jsonl", &[&good, &bad]);
        let out = run(&url, &["post", &file]);
        assert!(!out.status.success(), "{bad} was accepted");
        let err = stderr(&out);
        assert!(err.contains(&format!("line 2: [{code}]")), "{code}: {err}");
        assert_eq!(
            stdout(&run(&url, &["balances", "--json"])),
            before,
            "{code} changed the books"
        );
    }
    // The good line alone is recorded, and a replay of the file changes nothing.
    let file = write(dir.path(), "good.jsonl", &[&good]);
    assert!(run(&url, &["post", &file]).status.success());
    let after = stdout(&run(&url, &["balances", "--json"]));
    assert_ne!(after, before);
    assert!(run(&url, &["post", &file]).status.success());
    assert_eq!(stdout(&run(&url, &["balances", "--json"])), after);
}

#[tokio::test]
async fn verify_names_the_tampered_entry_and_fails() {
    let pg = ScratchPg::create(format!("el_test_cli_tamper_{}", std::process::id())).await;
    demo_summary(&pg.url);
    let mut conn = PgConnection::connect(&pg.url).await.unwrap();
    conn.execute("alter table entries disable trigger entries_append_only")
        .await
        .unwrap();
    conn.execute("update entries set external_ref = 'edited' where institution_id = 'INS-410922-002' and seq = 5")
        .await
        .unwrap();
    drop(conn);
    let out = run(&pg.url, &["verify"]);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("MISMATCH institution INS-410922-002 entry 5"),
        "{text}"
    );
    pg.drop().await;
}

#[test]
fn an_unsupported_database_url_is_refused_plainly() {
    let out = run("mysql://localhost/x", &["verify"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("use postgres://… or sqlite://…"),
        "{}",
        stderr(&out)
    );
}

const MAPPING: &str = r#"{
  "bank": "PYB",
  "encoding": "gbk",
  "skip_lines": 1,
  "date_format": "%Y%m%d",
  "thousands_separator": ",",
  "account": "6222000011112222",
  "currency": "CNY",
  "booking_date": "交易日期",
  "amount": {"style": "debit_credit", "debit": "借方发生额", "credit": "贷方发生额"},
  "balance_after": "余额",
  "bank_ref": "流水号",
  "remittance": "摘要",
  "counterparty_name": "对方户名"
}"#;

const EXPORT: &str = "账户明细查询\n交易日期,流水号,摘要,对方户名,借方发生额,贷方发生额,余额\n\
    20260901,A001,学费,张三,,\"4,800.00\",\"4,800.00\"\n\
    20260902,A002,拨付,青峰音乐,1200.50,,3599.50\n";

fn gbk_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, encoding_rs::GBK.encode(text).0).unwrap();
    path.display().to_string()
}

#[test]
fn feed_parse_prints_normalized_statements_and_refuses_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(dir.path(), "mapping.json", &[MAPPING]);
    let file = gbk_file(dir.path(), "export.csv", EXPORT);
    let out = bin()
        .args(["feed", "parse", "--mapping", &mapping, "--json", &file])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let s = &doc["statements"][0];
    assert_eq!(s["format"], "csv");
    assert_eq!(s["opening_balance"]["amount"], "0.00");
    assert_eq!(s["closing_balance"]["amount"], "3599.50");
    assert_eq!(s["lines"][0]["amount"], "4800.00");
    assert_eq!(s["lines"][1]["amount"], "-1200.50");
    assert_eq!(s["lines"][0]["counterparty_name"], "张三");

    let junk = write(
        dir.path(),
        "junk.bin",
        &["\u{1}\u{2}garbage without any structure"],
    );
    let out = bin().args(["feed", "parse", &junk]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("[unknown_format]"),
        "{}",
        stderr(&out)
    );
    let broken = gbk_file(
        dir.path(),
        "broken.csv",
        &EXPORT.replace("3599.50", "3599.51"),
    );
    let out = bin()
        .args(["feed", "parse", "--mapping", &mapping, &broken])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("running balance"), "{}", stderr(&out));
}

#[test]
fn feed_ingest_stores_a_file_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    let mapping = write(dir.path(), "mapping.json", &[MAPPING]);
    let file = gbk_file(dir.path(), "export.csv", EXPORT);
    let ingest = |f: &str| {
        run(
            &url,
            &["feed", "ingest", "--bank", "PYB", "--mapping", &mapping, f],
        )
    };

    let out = ingest(&file);
    assert!(!out.status.success(), "an unregistered bank is refused");
    assert!(stderr(&out).contains("[unknown_bank]"), "{}", stderr(&out));
    assert!(run(
        &url,
        &["bank", "add", "--id", "PYB", "--name", "Puyang Bank"]
    )
    .status
    .success());
    let out = ingest(&file);
    assert!(
        stderr(&out).contains("[unknown_bank_account]"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &url,
        &[
            "bank",
            "account",
            "--bank",
            "PYB",
            "--account",
            "6222000011112222",
            "--institution",
            "INS-410922-001",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let out = ingest(&file);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 statements stored (2 lines)"),
        "{}",
        stdout(&out)
    );
    let out = ingest(&file);
    assert!(
        stdout(&out).contains("already ingested"),
        "{}",
        stdout(&out)
    );
    // The same statement inside another file is recognised as already held.
    let copy = gbk_file(dir.path(), "copy.csv", &format!("{EXPORT}\n"));
    let out = ingest(&copy);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("0 statements stored (0 lines), 1 already held"),
        "{}",
        stdout(&out)
    );
    assert!(run(&url, &["verify"]).status.success());
}

/// A supervising bank that really listens on loopback, for `feed pull`.
async fn bank_with_statements() -> bank_adapter::fake_bank::FakeBank {
    let bank = bank_adapter::fake_bank::FakeBank::start().await;
    let mt940 = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bank-adapter/tests/fixtures/mt940/chinese_cny.sta"
    ))
    .unwrap();
    bank.add_statement(
        "CMBCCNBS/755912345610801",
        bank_adapter::Format::Mt940,
        mt940,
    );
    bank
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_pull_fetches_from_a_failing_bank_stores_once_and_resumes() {
    use bank_adapter::fake_bank::Failure;
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    assert!(run(
        &url,
        &[
            "bank",
            "add",
            "--id",
            "CMB",
            "--name",
            "China Merchants Bank"
        ]
    )
    .status
    .success());
    assert!(run(
        &url,
        &[
            "bank",
            "account",
            "--bank",
            "CMB",
            "--account",
            "CMBCCNBS/755912345610801",
            "--institution",
            "INS-410922-002"
        ],
    )
    .status
    .success());
    let bank = bank_with_statements().await;
    let checkpoint = dir.path().join("cmb.checkpoint").display().to_string();
    let pull = |url: &str, bank_url: &str| {
        let out = bin()
            .args([
                "--database-url",
                url,
                "feed",
                "pull",
                "--bank",
                "CMB",
                "--url",
                bank_url,
            ])
            .args([
                "--account",
                "CMBCCNBS/755912345610801",
                "--checkpoint",
                &checkpoint,
            ])
            .args(["--timeout-ms", "2000", "--retries", "2"])
            .env(
                "ESCROW_BANK_CREDENTIAL",
                bank_adapter::fake_bank::DEFAULT_CREDENTIAL,
            )
            .output()
            .unwrap();
        out
    };

    // The bank fails twice with 503, then answers: retried, stored once.
    bank.fail_next(2, Failure::Status(503));
    let out = tokio::task::block_in_place(|| pull(&url, bank.url()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 statements stored (4 lines)"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("1 new feeds pulled"),
        "{}",
        stdout(&out)
    );
    // A re-run fetches nothing twice.
    let out = tokio::task::block_in_place(|| pull(&url, bank.url()));
    assert!(
        stdout(&out).contains("0 new feeds pulled"),
        "{}",
        stdout(&out)
    );
    // A bank that refuses our credential is not retried and says who and what.
    bank.fail_next(1, Failure::Status(401));
    let before = bank.count_requests("GET", "/v1/accounts");
    let out = tokio::task::block_in_place(|| pull(&url, bank.url()));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("CMB"), "{}", stderr(&out));
    assert_eq!(bank.count_requests("GET", "/v1/accounts"), before + 1);
    assert!(run(&url, &["verify"]).status.success());
    bank.stop().await;
}

#[test]
fn a_gbk_mt940_file_is_read_with_its_encoding_named() {
    let dir = tempfile::tempdir().unwrap();
    let utf8 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bank-adapter/tests/fixtures/mt940/chinese_cny.sta"
    ))
    .unwrap();
    let path = dir.path().join("gbk.sta");
    std::fs::write(&path, encoding_rs::GBK.encode(&utf8).0).unwrap();
    let file = path.display().to_string();
    let out = bin()
        .args(["feed", "parse", "--encoding", "gbk", "--json", &file])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let remittance = doc["statements"][0]["lines"][0]["remittance"]
        .as_str()
        .unwrap();
    assert!(remittance.contains("张三"), "{remittance}");
    assert!(
        doc["warnings"].as_array().unwrap().is_empty(),
        "{}",
        doc["warnings"]
    );
    // Without the encoding the parser still reads it, and says it could not decode.
    let out = bin()
        .args(["feed", "parse", "--json", &file])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(!doc["warnings"].as_array().unwrap().is_empty());
}

/// Registers the demo's Puyang Bank and one supervised account with it.
fn supervised_by_pyb(url: &str, account: &str, institution: &str) {
    assert!(run(
        url,
        &["bank", "add", "--id", "PYB", "--name", "Puyang Bank"]
    )
    .status
    .success());
    let out = run(
        url,
        &[
            "bank",
            "account",
            "--bank",
            "PYB",
            "--account",
            account,
            "--institution",
            institution,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The demo county, one institution's supervised account at Puyang Bank,
/// requests it recorded on 2026-11-02 (the fields after the common ones)
/// and the bank's MT940 statement of that account (balances and lines),
/// posted and ingested. Returns the database URL.
fn bank_scenario(
    dir: &Path,
    institution: &str,
    account: &str,
    requests: &[&str],
    statement: &[&str],
) -> String {
    let url = sqlite_url(dir);
    demo_summary(&url);
    supervised_by_pyb(&url, account, institution);
    let head = format!(
        r#""institution":"{institution}","currency":"CNY","occurred_at":"2026-11-02T09:00:00Z""#
    );
    let lines: Vec<String> = requests.iter().map(|r| format!("{{{head},{r}}}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = run(&url, &["post", &write(dir, "requests.jsonl", &lines)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let header = [
        ":20:STMT-PYB".to_string(),
        format!(":25:{account}"),
        ":28C:00001/001".to_string(),
    ];
    let mut mt940: Vec<&str> = header.iter().map(String::as_str).collect();
    mt940.extend_from_slice(statement);
    mt940.push("-");
    let out = run(
        &url,
        &[
            "feed",
            "ingest",
            "--bank",
            "PYB",
            &write(dir, "pyb.sta", &mt940),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    url
}

/// One account of an institution, from `balances --json`.
fn account_balance(url: &str, institution: &str, account: &str) -> serde_json::Value {
    let out = run(url, &["balances", "--institution", institution, "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == account)
        .unwrap()
        .clone()
}

#[test]
fn reconcile_matches_bank_lines_to_the_ledger_and_names_an_unauthorized_outflow() {
    let dir = tempfile::tempdir().unwrap();
    let url = bank_scenario(
        dir.path(),
        "INS-410922-001",
        "6222000011112222",
        &[
            r#""client_id":"rcpt-1","external_ref":"ORD-20261101-42","op":"record_unidentified_receipt","amount":"88.00""#,
            r#""client_id":"RL-2026-11","op":"instruct_release","amount":"50.00""#,
        ],
        &[
            ":60F:C261101CNY1000,00",
            ":61:2611021102C88,00NTRFNONREF//B001",
            ":86:学费 订单 ORD-20261101-42",
            ":61:2611021102D50,00NTRFRL-2026-11//B002",
            ":86:拨付",
            ":61:2611031103D999,00NTRFNONREF//B003",
            ":86:转出",
            ":61:2611031103C12,34NTRFNONREF//B004",
            ":86:来款",
            ":62F:C261103CNY51,34",
        ],
    );

    let doc = run_json(
        &url,
        &["reconcile", "--institution", "INS-410922-001", "--json"],
    );
    let account = &doc["accounts"][0];
    assert_eq!(account["bank_closing"]["amount"], "51.34");
    let matches = account["matches"].as_array().unwrap();
    let by_line = |amount: &str| {
        matches
            .iter()
            .find(|m| m["lines"][0]["amount"] == amount)
            .unwrap_or_else(|| panic!("no match for {amount}: {matches:?}"))
    };
    let release = by_line("-50.00");
    assert_eq!(release["pass"], "identifier");
    assert_eq!(release["entries"][0]["client_id"], "RL-2026-11");
    let receipt = by_line("88.00");
    assert_eq!(receipt["pass"], "reference");
    assert_eq!(receipt["entries"][0]["client_id"], "rcpt-1");
    let outflow = account["unmatched_lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["amount"] == "-999.00")
        .expect("the unknown debit is unmatched");
    assert_eq!(outflow["unauthorized_outflow"], true);
    assert_eq!(outflow["reason"], "unmatched_debit");

    let text = stdout(&run(
        &url,
        &["reconcile", "--institution", "INS-410922-001"],
    ));
    assert!(text.contains("UNAUTHORIZED OUTFLOW"), "{text}");

    // Recorded: the matches are kept, the bank's execution of the release
    // confirms it in the books, the credit nobody can attribute goes to
    // suspense; a re-run finds nothing new.
    let pending =
        || account_balance(&url, "INS-410922-001", "releasable")["pending_debits"].clone();
    assert_eq!(pending(), "50.00");
    let record = || {
        let doc = run_json(
            &url,
            &[
                "reconcile",
                "--institution",
                "INS-410922-001",
                "--record",
                "--json",
            ],
        );
        doc["accounts"][0].clone()
    };
    let first = record();
    assert_eq!(first["instructions_confirmed"], 1, "{first}");
    assert!(first["matches_kept"].as_u64().unwrap() >= 2, "{first}");
    assert_eq!(first["unauthorized_outflows"], 1);
    assert_eq!(
        first["credits_to_suspense"], 1,
        "the 12.34 nobody can attribute"
    );
    assert_eq!(pending(), "0.00");
    assert_eq!(
        account_balance(&url, "INS-410922-001", "unidentified")["balance"],
        "100.34",
        "88.00 recorded before + 12.34 from the bank"
    );
    let again = record();
    assert_eq!(again["matches_kept"], 0, "{again}");
    assert_eq!(again["instructions_confirmed"], 0);
    assert_eq!(again["credits_to_suspense"], 0);
    assert!(run(&url, &["verify"]).status.success());
}

/// Ingests MT940/MT942 lines as one file from Puyang Bank.
fn ingest_pyb(url: &str, dir: &Path, name: &str, lines: &[&str]) -> serde_json::Value {
    let out = run(
        url,
        &[
            "feed",
            "ingest",
            "--bank",
            "PYB",
            "--json",
            &write(dir, name, lines),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

#[test]
fn a_missing_statement_quarantines_the_account_and_intraday_lines_stay_provisional() {
    let dir = tempfile::tempdir().unwrap();
    let account = "6222000011112222";
    let url = bank_scenario(
        dir.path(),
        "INS-410922-001",
        account,
        &[
            r#""client_id":"RL-A","op":"instruct_release","amount":"50.00""#,
            r#""client_id":"RL-B","op":"instruct_release","amount":"30.00""#,
            r#""client_id":"RL-C","op":"instruct_release","amount":"20.00""#,
        ],
        &[
            ":60F:C261102CNY1000,00",
            ":61:2611021102D50,00NTRFRL-A//B001",
            ":86:拨付",
            ":62F:C261102CNY950,00",
        ],
    );
    let pending =
        || account_balance(&url, "INS-410922-001", "releasable")["pending_debits"].clone();
    let report = |extra: &[&str]| {
        let mut args = vec!["reconcile", "--institution", "INS-410922-001", "--json"];
        args.extend_from_slice(extra);
        run_json(&url, &args)["accounts"][0].clone()
    };
    let record = || report(&["--record"]);

    // The statement of 4 November opens at 900.00: the one of the 3rd
    // (950.00 → 900.00) never came.
    let fourth = ingest_pyb(
        &url,
        dir.path(),
        "s3.sta",
        &[
            ":20:STMT-PYB3",
            &format!(":25:{account}"),
            ":28C:00003/001",
            ":60F:C261104CNY900,00",
            ":61:2611041104D30,00NTRFRL-B//B003",
            ":86:拨付",
            ":62F:C261104CNY870,00",
            "-",
        ],
    );
    assert!(fourth[0]["warnings"][0]
        .as_str()
        .unwrap()
        .contains("a statement is missing"));
    let r = report(&[]);
    assert_eq!(r["quarantine"]["from"], "2026-11-03", "{r}");
    let status: Vec<(&str, &str)> = r["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["date"].as_str().unwrap(), d["status"].as_str().unwrap()))
        .collect();
    assert_eq!(status[1], ("2026-11-04", "quarantined"), "{status:?}");
    assert_ne!(status[0].1, "quarantined");
    let day = &r["days"][1];
    assert_eq!(day["bank_closing"], "870.00");
    assert!(day["ledger_balance"].is_string() && day["owed"].is_string());
    // Nothing is booked from the quarantined statement.
    let first = record();
    assert_eq!(first["quarantined_from"], "2026-11-03");
    assert_eq!(
        first["days_recorded"], 2,
        "the 2nd and the (quarantined) 4th"
    );
    assert_eq!(first["instructions_confirmed"], 1, "only RL-A: {first}");
    assert_eq!(pending(), "50.00", "RL-B and RL-C still pending");

    // An intraday report of the 5th shows RL-C executed: provisional only.
    ingest_pyb(
        &url,
        dir.path(),
        "intraday.sta",
        &[
            ":20:INTRA1105",
            &format!(":25:{account}"),
            ":28C:00005/001",
            ":34F:CNYD0,",
            ":13D:2611051030+0800",
            ":61:2611051105D20,00NTRFRL-C//B005",
            ":86:拨付",
            ":90D:1CNY20,00",
            ":90C:0CNY0,",
            "-",
        ],
    );
    let r = report(&[]);
    let provisional = r["provisional"]["matches"].as_array().unwrap();
    assert_eq!(provisional.len(), 1, "{r}");
    assert_eq!(provisional[0]["entries"][0]["client_id"], "RL-C");
    let again = record();
    assert_eq!(again["instructions_confirmed"], 0);
    assert_eq!(again["days_recorded"], 0, "nothing changed on any day");
    assert_eq!(pending(), "50.00", "an intraday line books nothing");

    // The bank sends the missing statement: the chain is whole, RL-B is
    // confirmed, and the 50.00 that left on the 3rd is an unauthorized outflow.
    ingest_pyb(
        &url,
        dir.path(),
        "s2.sta",
        &[
            ":20:STMT-PYB2",
            &format!(":25:{account}"),
            ":28C:00002/001",
            ":60F:C261102CNY950,00",
            ":61:2611031103D50,00NTRFNONREF//B002",
            ":86:转出",
            ":62F:C261103CNY900,00",
            "-",
        ],
    );
    let healed = record();
    assert_eq!(healed["quarantined_from"], serde_json::Value::Null);
    assert_eq!(healed["instructions_confirmed"], 1, "RL-B: {healed}");
    assert_eq!(healed["unauthorized_outflows"], 1);
    assert_eq!(
        healed["days_recorded"], 2,
        "the 3rd, and a new version of the 4th (no longer quarantined)"
    );
    assert_eq!(pending(), "20.00");

    // The end-of-day statement of the 5th supersedes the intraday line.
    ingest_pyb(
        &url,
        dir.path(),
        "s5.sta",
        &[
            ":20:STMT-PYB5",
            &format!(":25:{account}"),
            ":28C:00005/001",
            ":60F:C261104CNY870,00",
            ":61:2611051105D20,00NTRFRL-C//B005",
            ":86:拨付",
            ":62F:C261105CNY850,00",
            "-",
        ],
    );
    assert_eq!(record()["instructions_confirmed"], 1, "RL-C");
    assert_eq!(pending(), "0.00");
    let r = report(&[]);
    assert!(r["quarantine"].is_null());
    assert_eq!(r["provisional"]["matches"], serde_json::json!([]));
    assert_eq!(r["days"].as_array().unwrap().len(), 4);

    // As things stood at the end of the 3rd: two statement days, and the
    // report of the past leaves out what came after.
    let past = report(&["--date", "2026-11-03"]);
    let days: Vec<&str> = past["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["date"].as_str().unwrap())
        .collect();
    assert_eq!(days, ["2026-11-02", "2026-11-03"]);
    assert_eq!(past["bank_closing"]["amount"], "900.00");
    assert!(run(&url, &["verify"]).status.success());
}

#[test]
fn the_demo_county_flags_exactly_the_institution_that_is_running_off() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    let doc = run_json(
        &url,
        &[
            "risk",
            "--jurisdiction",
            "410922",
            "--as-of",
            "2026-11-07",
            "--json",
        ],
    );
    let institutions = doc["institutions"].as_array().unwrap();
    assert_eq!(
        institutions.len(),
        4,
        "every institution in scope is listed"
    );
    let first = &institutions[0];
    assert_eq!(first["id"], "INS-410922-004");
    let kinds: Vec<&str> = first["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    for expected in ["shortfall", "unauthorized_outflow", "balance_mismatch"] {
        assert!(
            kinds.contains(&expected),
            "{expected} missing from {kinds:?}"
        );
    }
    let outflow = first["signals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "unauthorized_outflow")
        .unwrap();
    assert_eq!(outflow["severity"], "red");
    assert!(
        outflow["summary"].as_str().unwrap().contains("30,000.00"),
        "{}",
        outflow["summary"]
    );
    for healthy in &institutions[1..] {
        assert_eq!(
            healthy["signals"],
            serde_json::json!([]),
            "{} was flagged",
            healthy["id"]
        );
        assert_eq!(healthy["score"], 0);
    }
    // Out of scope is out of sight: a city with no school in it.
    let out = run(&url, &["jurisdiction", "add", "410100", "郑州市"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        &url,
        &[
            "risk",
            "--jurisdiction",
            "410100",
            "--as-of",
            "2026-11-07",
            "--json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["institutions"], serde_json::json!([]));
}

#[test]
fn recorded_risk_runs_keep_one_alert_per_condition_that_officers_work() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    let record = || {
        run(
            &url,
            &[
                "risk",
                "--jurisdiction",
                "410922",
                "--as-of",
                "2026-11-07",
                "--record",
                "--json",
            ],
        )
    };
    let out = record();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = record();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let golden = doc["recorded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["institution"] == "INS-410922-004")
        .unwrap();
    assert_eq!(
        golden["alerts"]["raised"], 0,
        "the second run raises nothing new"
    );
    assert!(golden["alerts"]["unchanged"].as_u64().unwrap() >= 3);

    let out = run(&url, &["alert", "list", "--status", "open", "--json"]);
    let alerts: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let alerts = alerts["alerts"].as_array().unwrap();
    assert!(
        alerts.iter().all(|a| a["institution"] == "INS-410922-004"),
        "only the run-off is alerted"
    );
    let outflow = alerts
        .iter()
        .find(|a| a["kind"] == "unauthorized_outflow")
        .unwrap();
    let key = outflow["key"].as_str().unwrap();

    let act = |action: &str, extra: &[&str]| {
        let mut args = vec![
            "alert",
            "act",
            "--institution",
            "INS-410922-004",
            "--key",
            key,
            "--action",
            action,
            "--actor",
            "officer-wang",
        ];
        args.extend_from_slice(extra);
        run(&url, &args)
    };
    assert!(act("acknowledge", &["--comment", "calling the bank"])
        .status
        .success());
    let out = act("rectify", &[]);
    assert!(stderr(&out).contains("[missing_field]"), "{}", stderr(&out));
    let past = (chrono::Utc::now().date_naive() - chrono::Duration::days(1)).to_string();
    let out = act("rectify", &["--due", &past]);
    assert!(
        stderr(&out).contains("[due_in_the_past]"),
        "{}",
        stderr(&out)
    );
    let due = (chrono::Utc::now().date_naive() + chrono::Duration::days(30)).to_string();
    assert!(act("rectify", &["--due", &due]).status.success());
    assert!(act("resolve", &["--comment", "money returned"])
        .status
        .success());
    let out = act("acknowledge", &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("[invalid_alert_transition]"),
        "{}",
        stderr(&out)
    );
    // The condition is still there on the next run: the alert reopens.
    let out = record();
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let golden = doc["recorded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["institution"] == "INS-410922-004")
        .unwrap();
    assert_eq!(golden["alerts"]["reopened"], 1);
}

#[test]
fn an_officer_confirms_a_suggested_match_and_it_is_final() {
    let dir = tempfile::tempdir().unwrap();
    let url = bank_scenario(
        dir.path(),
        "INS-410922-002",
        "6222000011119999",
        &[r#""client_id":"walk-in-cash","op":"record_unidentified_receipt","amount":"77.00""#],
        &[
            ":60F:C261101CNY0,00",
            ":61:2611021102C77,00NTRFNONREF//C001",
            ":86:现金存入",
            ":62F:C261102CNY77,00",
        ],
    );
    let doc = run_json(
        &url,
        &[
            "reconcile",
            "--institution",
            "INS-410922-002",
            "--record",
            "--json",
        ],
    );
    assert_eq!(
        doc["accounts"][0]["credits_to_suspense"], 0,
        "a suggestion is not suspense"
    );

    let list = || {
        stdout(&run(
            &url,
            &["suggestion", "list", "--institution", "INS-410922-002"],
        ))
    };
    let listed = list();
    let match_id = listed
        .split_whitespace()
        .next()
        .expect("one suggestion")
        .to_string();
    assert!(listed.contains("[amount_date]"), "{listed}");
    let decide = |verb: &str| {
        run(
            &url,
            &[
                "suggestion",
                verb,
                "--institution",
                "INS-410922-002",
                "--match",
                &match_id,
                "--actor",
                "officer-wang",
            ],
        )
    };
    let out = decide("confirm");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(list().trim().is_empty());
    let out = decide("reject");
    assert!(
        stderr(&out).contains("[suggestion_decided]"),
        "{}",
        stderr(&out)
    );
    // Confirmed, its line is settled: a re-run neither suggests nor suspends it.
    let out = run(
        &url,
        &[
            "reconcile",
            "--institution",
            "INS-410922-002",
            "--record",
            "--json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["accounts"][0]["matches_kept"], 0);
    assert_eq!(doc["accounts"][0]["credits_to_suspense"], 0);
}

#[test]
fn a_release_the_bank_returned_is_voided_in_the_books() {
    let dir = tempfile::tempdir().unwrap();
    let url = bank_scenario(
        dir.path(),
        "INS-410922-001",
        "6222000011118888",
        &[r#""client_id":"RL-RET-1","op":"instruct_release","amount":"40.00""#],
        &[
            ":60F:C261101CNY100,00",
            ":61:2611021102D40,00NTRFRL-RET-1//R001",
            ":86:拨付",
            ":61:2611031103RD40,00NTRFRL-RET-1//R002",
            ":86:退回 account closed",
            ":62F:C261103CNY100,00",
        ],
    );
    let doc = run_json(
        &url,
        &[
            "reconcile",
            "--institution",
            "INS-410922-001",
            "--record",
            "--json",
        ],
    );
    assert_eq!(
        doc["accounts"][0]["instructions_voided_as_returned"], 1,
        "{doc}"
    );
    assert_eq!(doc["accounts"][0]["instructions_confirmed"], 0);
    let releasable = account_balance(&url, "INS-410922-001", "releasable");
    assert_eq!(
        releasable["pending_debits"], "0.00",
        "the returned release no longer holds money back"
    );
    // And it is a red alert: the money is still owed to the institution.
    let alerts = run_json(
        &url,
        &["alert", "list", "--institution", "INS-410922-001", "--json"],
    );
    let returned: Vec<_> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["key"] == "instruction_returned:RL-RET-1")
        .collect();
    assert_eq!(returned.len(), 1, "{alerts}");
    assert_eq!(returned[0]["severity"], "red");
    assert!(returned[0]["summary"].as_str().unwrap().contains("40.00"));
    assert!(run(&url, &["verify"]).status.success());
}

#[test]
fn a_bank_that_stops_sending_statements_is_noticed_on_the_first_day_past_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    let silence = |as_of: &str| -> Vec<(String, String)> {
        let doc = run_json(
            &url,
            &[
                "risk",
                "--jurisdiction",
                "410922",
                "--as-of",
                as_of,
                "--json",
            ],
        );
        doc["institutions"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|i| {
                let id = i["id"].as_str().unwrap().to_string();
                i["signals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|s| s["kind"] == "feed_silence")
                    .map(move |s| (id.clone(), s["severity"].as_str().unwrap().to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    // The demo's statements end on 2026-11-07; the national rule allows 3 days.
    assert!(silence("2026-11-10").is_empty());
    let yellow = silence("2026-11-11");
    assert_eq!(
        yellow.len(),
        6,
        "every supervised account of the county: {yellow:?}"
    );
    assert!(yellow.iter().all(|(_, severity)| severity == "yellow"));
    // More than 7 days without a statement is red.
    assert!(silence("2026-11-15")
        .iter()
        .all(|(_, severity)| severity == "red"));
}

fn serve(url: &str, extra: &[&str]) -> Served {
    let mut c = bin();
    c.arg("--database-url")
        .arg(url)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra);
    served::start(c)
}

#[tokio::test]
async fn serve_demo_gives_a_newcomer_a_token_real_balances_and_a_red_alert() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let served = serve(&url, &["--demo"]);
    let token_line = served
        .printed
        .iter()
        .find(|l| l.starts_with("officer token"))
        .expect("an officer token is printed")
        .clone();
    let token = token_line.rsplit(' ').next().unwrap().to_string();
    assert!(
        served
            .printed
            .iter()
            .any(|l| l.contains("curl") && l.contains(&token)),
        "a first request to try: {:?}",
        served.printed
    );
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("http://{}{path}", served.addr))
            .bearer_auth(&token)
            .send()
    };
    let overview: serde_json::Value = get("/v1/jurisdictions/410922/overview")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(overview["institutions"].as_array().unwrap().len(), 4);
    let red: serde_json::Value = get("/v1/alerts?severity=red")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let red = red["items"].as_array().unwrap();
    assert!(
        red.iter()
            .any(|a| a["institution"] == "INS-410922-004" && a["kind"] == "shortfall"),
        "{red:?}"
    );
    // The families' flow: families confirmed lessons, one disputed, one
    // school's families never answered (deemed confirmed), and the printed
    // family token reads its own account and answers its pending lessons.
    let lessons = |institution: &str| {
        let get = get(&format!("/v1/institutions/{institution}/lessons"));
        async move {
            let page: serde_json::Value = get.await.unwrap().json().await.unwrap();
            page["items"].as_array().unwrap().clone()
        }
    };
    let states = |items: &[serde_json::Value]| {
        let mut s: Vec<String> = items
            .iter()
            .map(|l| l["state"].as_str().unwrap().to_string())
            .collect();
        s.sort();
        s.dedup();
        s
    };
    let sunrise = lessons("INS-410922-001").await;
    assert_eq!(
        states(&sunrise),
        ["confirmed", "disputed", "pending"],
        "{sunrise:?}"
    );
    let disputed = sunrise.iter().find(|l| l["state"] == "disputed").unwrap();
    assert_eq!(disputed["enrollment"], "410922-001-E005");
    assert!(disputed["trail"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("ill"));
    let chess = lessons("INS-410922-003").await;
    assert_eq!(states(&chess), ["deemed_confirmed"], "{chess:?}");
    assert!(chess.iter().all(|l| l["trail"][0]["actor"] == "workflow"));

    let family_line = served
        .printed
        .iter()
        .find(|l| l.starts_with("family token"))
        .expect("a family token is printed")
        .clone();
    let family = family_line.rsplit(' ').next().unwrap().to_string();
    let account_path = "/v1/institutions/INS-410922-001/enrollments/410922-001-E001/account";
    let account: serde_json::Value = client
        .get(format!("http://{}{account_path}", served.addr))
        .bearer_auth(&family)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["hours_pending"], 2, "{account}");
    assert!(
        account["hours_confirmed"].as_u64().unwrap() > 0,
        "{account}"
    );
    let pending = account["lessons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["state"] == "pending")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        served
            .printed
            .iter()
            .any(|l| l.contains(&family) && l.contains(&format!("/lessons/{pending}/confirm"))),
        "{:?}",
        served.printed
    );
    // Another family's account is out of its sight.
    let other = client
        .get(format!(
            "http://{}/v1/institutions/INS-410922-001/enrollments/410922-001-E005/account",
            served.addr
        ))
        .bearer_auth(&family)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), reqwest::StatusCode::NOT_FOUND);
    let confirmed: serde_json::Value = client
        .post(format!(
            "http://{}/v1/institutions/INS-410922-001/lessons/{pending}/confirm",
            served.addr
        ))
        .bearer_auth(&family)
        .header("Idempotency-Key", "try-1")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(confirmed["lesson"]["state"], "confirmed", "{confirmed}");
    assert!(confirmed["entry"].is_object(), "posted: {confirmed}");

    let status = served.terminate();
    assert!(status.success(), "{status:?}");

    // A second start keeps the data and gives a fresh token; the one the
    // first start printed is revoked, so only the token on screen opens it.
    let again = serve(&url, &["--demo"]);
    let second = again
        .printed
        .iter()
        .find(|l| l.starts_with("officer token"))
        .unwrap()
        .clone();
    assert_ne!(second, token_line);
    let list = run(&url, &["token", "list", "--json"]);
    let tokens: serde_json::Value = serde_json::from_str(&stdout(&list)).unwrap();
    let tokens = tokens.as_array().unwrap();
    assert_eq!(tokens.len(), 4, "an officer's and a family's per start");
    let active = tokens.iter().filter(|t| t["revoked_at"].is_null()).count();
    assert_eq!(active, 2, "{tokens:?}");
    let old = client
        .get(format!(
            "http://{}/v1/jurisdictions/410922/overview",
            again.addr
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(again.terminate().success());
}

#[test]
fn tokens_are_created_once_listed_without_secrets_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    assert!(run(&url, &["demo"]).status.success());
    let created = run_json(
        &url,
        &[
            "token",
            "create",
            "--role",
            "officer",
            "--jurisdiction",
            "410922",
            "--json",
        ],
    );
    let secret = created["token"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let list = stdout(&run(&url, &["token", "list"]));
    assert!(list.contains(id) && !list.contains(secret), "{list}");
    // A role with the wrong kind of scope, or an unknown scope, is refused.
    let out = run(
        &url,
        &[
            "token",
            "create",
            "--role",
            "bank",
            "--jurisdiction",
            "410922",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("scoped by bank"), "{}", stderr(&out));
    let out = run(
        &url,
        &[
            "token",
            "create",
            "--role",
            "officer",
            "--jurisdiction",
            "999999",
        ],
    );
    assert!(
        stderr(&out).contains("jurisdiction 999999 does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(run(&url, &["token", "revoke", id]).status.success());
    let list = stdout(&run(&url, &["token", "list"]));
    assert!(list.contains("(revoked)"), "{list}");
    assert!(!run(&url, &["token", "revoke", id]).status.success());
}

/// Two processes opening one new SQLite file at once (a service and a cron
/// job started together) both find it migrated; once, one of them failed
/// one run in ten with "table job_runs already exists".
#[test]
fn two_processes_migrating_one_new_sqlite_file_both_succeed() {
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(dir.path());
        let spawn = || {
            bin()
                .arg("--database-url")
                .arg(&url)
                .arg("migrate")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
        }
        let out = run(&url, &["verify"]);
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
    }
}

/// A new deployment starts from nothing: the nation, then a province, a
/// city and a county, each checked against GB/T 2260.
#[test]
fn a_new_deployment_registers_its_jurisdictions_from_the_nation_down() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let out = run(&url, &["jurisdiction", "add", "410000", "河南省"]);
    assert!(!out.status.success(), "a province before the nation");
    assert!(
        stderr(&out).contains("jurisdiction 000000 does not exist"),
        "{}",
        stderr(&out)
    );
    for (code, name) in [
        ("000000", "中华人民共和国"),
        ("410000", "河南省"),
        ("410900", "濮阳市"),
        ("410922", "清丰县"),
    ] {
        let out = run(&url, &["jurisdiction", "add", code, name]);
        assert!(out.status.success(), "{code}: {}", stderr(&out));
    }
    for (args, says) in [
        (
            vec!["jurisdiction", "add", "990000", "Nowhere"],
            "no province",
        ),
        (vec!["jurisdiction", "add", "410022", "X"], "city digits"),
        (
            vec![
                "jurisdiction",
                "add",
                "410923",
                "南乐县",
                "--parent",
                "410000",
            ],
            "directly below 410900",
        ),
    ] {
        let out = run(&url, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let list = run_json(&url, &["jurisdiction", "list", "--json"]);
    let codes: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["000000", "410000", "410900", "410922"]);
    assert_eq!(list[3]["parent"], "410900");
    assert_eq!(list[0]["parent"], serde_json::Value::Null);
}

/// `escrow-ledger … | head` used to panic ("failed printing to stdout:
/// Broken pipe", exit 101); a reader that stops early is not an error.
#[test]
fn a_reader_that_stops_early_gets_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    assert!(run(&url, &["demo"]).status.success());
    let mut child = bin()
        .arg("--database-url")
        .arg(&url)
        .args(["risk", "--as-of", "2026-11-07", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close our end before it writes (it opens the database and scans
    // first), as a reader that has had enough does.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

/// Mistakes on the command line are named with what to write instead, and
/// `risk --fail-on` lets cron gate on the scan.
#[test]
fn the_command_line_says_what_it_expects_and_gates_on_risk() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    assert!(run(&url, &["demo"]).status.success());
    let out = run(&url, &["balances", "--at", "yesterday"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));
    let out = run(&url, &["risk", "--as-of", "last week"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("YYYY-MM-DD"), "{}", stderr(&out));
    let out = run(&url, &["risk", "--jurisdiction", "999999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("jurisdiction 999999 does not exist"),
        "{}",
        stderr(&out)
    );
    // The demo county has a school running off: red.
    let out = run(&url, &["risk", "--as-of", "2026-11-07", "--fail-on", "red"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stdout(&out).contains("INS-410922-004"));
    // A province with no school has nothing to flag: exit 0.
    let out = run(&url, &["jurisdiction", "add", "420000", "湖北省"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        &url,
        &[
            "risk",
            "--jurisdiction",
            "420000",
            "--as-of",
            "2026-11-07",
            "--fail-on",
            "yellow",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A PostgreSQL that is down is said at once, in one line, not after 30 s
/// with the cause printed twice.
#[test]
fn a_database_that_is_down_is_reported_at_once_and_once() {
    // Nothing listens on this port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("postgres://postgres@127.0.0.1:{port}/test");
    let started = std::time::Instant::now();
    let out = run(&url, &["verify"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}

/// The service killed with SIGKILL while families pay and ask for refunds,
/// restarted, and every request sent again under its key: each payment is
/// in the books once, each refund exists once, every answer a client had
/// is the answer it gets again, and the books verify.
async fn a_killed_service_loses_nothing_and_doubles_nothing(url: &str) {
    use std::collections::BTreeMap;
    assert!(run(url, &["demo"]).status.success());
    let token = run_json(
        url,
        &[
            "token",
            "create",
            "--role",
            "platform",
            "--jurisdiction",
            "410922",
            "--json",
        ],
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let timeout = ["--request-timeout-secs", "2"];
    let served = serve(url, &timeout);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let institution = "INS-410922-001";
    let post = move |addr: String, path: String, key: String, body: serde_json::Value| {
        let client = client.clone();
        let token = token.clone();
        async move {
            let r = client
                .post(format!("http://{addr}{path}"))
                .bearer_auth(&token)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await
                .ok()?;
            let status = r.status();
            let body: serde_json::Value = r.json().await.ok()?;
            Some((status, body))
        }
    };
    for e in 1..=4 {
        let (status, body) = post(
            served.addr.clone(),
            format!("/v1/institutions/{institution}/enrollments"),
            format!("enr-{e}"),
            serde_json::json!({"id": format!("E-KILL-{e}"), "student_ref": format!("S-{e}"),
                "hours_bought": 40, "price": "4000.00",
                "course_start": "2026-09-01", "course_end": "2026-11-30"}),
        )
        .await
        .unwrap();
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    }
    // Four clients, each alternating a payment and a refund request.
    let request = move |w: usize, n: usize| -> (String, String, serde_json::Value) {
        let enrollment = format!("E-KILL-{}", w + 1);
        if n.is_multiple_of(2) {
            (
                format!("/v1/institutions/{institution}/payments"),
                format!("kill-pay-{w}-{n}"),
                serde_json::json!({"enrollment": enrollment, "amount": "1.00"}),
            )
        } else {
            (
                format!("/v1/institutions/{institution}/refunds"),
                format!("kill-rf-{w}-{n}"),
                serde_json::json!({"enrollment": enrollment, "amount": "0.50",
                    "payee": {"name": "Zhang San", "account": "6214830100123456", "bank": "CMBCCNBS"}}),
            )
        }
    };
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for w in 0..4 {
        let addr = served.addr.clone();
        let sent_tx = sent_tx.clone();
        let post = post.clone();
        workers.push(tokio::spawn(async move {
            for n in 0..10_000 {
                let (path, key, body) = request(w, n);
                let _ = sent_tx.send((w, n, None));
                match post(addr.clone(), path, key, body).await {
                    Some((status, body)) if status.is_success() => {
                        let _ = sent_tx.send((w, n, Some(body)));
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        }));
    }
    drop(sent_tx);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    served.kill();
    for w in workers {
        w.await.unwrap();
    }
    // What was sent, and the answer each acknowledged request got.
    let mut sent: BTreeMap<(usize, usize), Option<serde_json::Value>> = BTreeMap::new();
    while let Some((w, n, answer)) = sent_rx.recv().await {
        let slot = sent.entry((w, n)).or_default();
        if answer.is_some() {
            *slot = answer;
        }
    }
    let acknowledged = sent.values().filter(|a| a.is_some()).count();
    assert!(
        acknowledged >= 8,
        "the load ran: {acknowledged} acknowledged"
    );

    let again = serve(url, &timeout);
    for (&(w, n), first) in &sent {
        let (path, key, body) = request(w, n);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let answer = loop {
            let (status, answer) =
                post(again.addr.clone(), path.clone(), key.clone(), body.clone())
                    .await
                    .expect("the restarted service answers");
            if status == reqwest::StatusCode::CONFLICT && answer["code"] == "request_in_progress" {
                // The killed attempt's claim: wait out its lease.
                assert!(
                    std::time::Instant::now() < deadline,
                    "{key}: still in progress"
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                continue;
            }
            assert!(status.is_success(), "{key}: {status} {answer}");
            break answer;
        };
        if let Some(first) = first {
            assert_eq!(&answer, first, "{key}: a different answer the second time");
        }
    }
    assert!(again.terminate().success());

    let payments = sent.keys().filter(|(_, n)| n.is_multiple_of(2)).count() as i64;
    let refunds = sent.len() as i64 - payments;
    let store = ledger_core::Store::connect(url).await.unwrap();
    let count = |sql: &'static str| {
        let store = store.clone();
        async move {
            match &store {
                ledger_core::Store::Postgres(s) => sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(s.pool())
                    .await
                    .unwrap(),
                ledger_core::Store::Sqlite(s) => sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(s.pool())
                    .await
                    .unwrap(),
            }
        }
    };
    assert_eq!(
        count("select cast(count(*) as bigint) from entries where client_id like 'kill-pay-%'")
            .await,
        payments,
        "each payment once"
    );
    assert_eq!(
        count(
            "select cast(coalesce(sum(amount_minor), 0) as bigint) from postings p join entries e \
               on e.institution_id = p.institution_id and e.seq = p.seq \
               where e.client_id like 'kill-pay-%' and p.side = 'D'"
        )
        .await,
        payments * 100,
        "the money of each payment once"
    );
    assert_eq!(
        count("select cast(count(*) as bigint) from refunds where enrollment_id like 'E-KILL-%'")
            .await,
        refunds,
        "each refund once"
    );
    store.close().await;
    let out = run(url, &["verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[tokio::test]
async fn a_killed_service_loses_nothing_and_doubles_nothing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_killed_service_loses_nothing_and_doubles_nothing(&sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn a_killed_service_loses_nothing_and_doubles_nothing_on_postgres() {
    let pg = ScratchPg::create(format!("el_test_cli_kill_{}", std::process::id())).await;
    a_killed_service_loses_nothing_and_doubles_nothing(&pg.url).await;
    pg.drop().await;
}

/// `attest keygen` into `dir`: (private key path, public key path).
fn keygen(dir: &Path, name: &str) -> (String, String) {
    let key = dir.join(name).display().to_string();
    let out = bin()
        .args(["attest", "keygen", "--out", &key])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let public = format!("{key}.pub");
    assert_eq!(
        stdout(&out).trim(),
        std::fs::read_to_string(&public).unwrap().trim()
    );
    (key, public)
}

fn attest(url: &str, key: &str, out: &Path) -> String {
    let path = out.display().to_string();
    let done = run(url, &["attest", "--key", key, "--out", &path]);
    assert!(done.status.success(), "{}{}", stdout(&done), stderr(&done));
    path
}

fn verify_with(url: &str, checkpoint: &str, public: &str) -> Output {
    run(
        url,
        &["verify", "--checkpoint", checkpoint, "--public-key", public],
    )
}

/// Puts accounts, chain heads and counters back in line with the entries
/// left, as a careful superuser would, so that only a checkpoint can tell.
const MAKE_CONSISTENT: &str = "
    update accounts set
      posted_debits_minor = coalesce((select p.posted_debits_after_minor from postings p where p.institution_id = accounts.institution_id and p.account_code = accounts.account_code order by p.seq desc, p.leg desc limit 1), 0),
      posted_credits_minor = coalesce((select p.posted_credits_after_minor from postings p where p.institution_id = accounts.institution_id and p.account_code = accounts.account_code order by p.seq desc, p.leg desc limit 1), 0),
      pending_debits_minor = coalesce((select p.pending_debits_after_minor from postings p where p.institution_id = accounts.institution_id and p.account_code = accounts.account_code order by p.seq desc, p.leg desc limit 1), 0),
      pending_credits_minor = coalesce((select p.pending_credits_after_minor from postings p where p.institution_id = accounts.institution_id and p.account_code = accounts.account_code order by p.seq desc, p.leg desc limit 1), 0);
    update chain_heads set
      last_seq = coalesce((select max(e.seq) from entries e where e.institution_id = chain_heads.institution_id), 0),
      last_hash = coalesce((select e.hash from entries e where e.institution_id = chain_heads.institution_id order by e.seq desc limit 1), '0000000000000000000000000000000000000000000000000000000000000000');
";

#[tokio::test]
async fn a_signed_checkpoint_proves_the_sqlite_database_extends_it_and_names_deleted_last_entries()
{
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    let (key, public) = keygen(dir.path(), "bureau.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is the owner's alone");
    }
    // A key is never overwritten.
    let again = bin()
        .args(["attest", "keygen", "--out", &key])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let checkpoint = attest(&url, &key, &dir.path().join("2026-12-01.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    assert_eq!(doc["format"], "escrow-ledger-checkpoint/v1");
    assert_eq!(doc["institutions"].as_array().unwrap().len(), 4);
    let last_seq = doc["institutions"][0]["entries"]["seq"].as_i64().unwrap();
    assert!(last_seq > 2);

    // The books grow: the database still extends the checkpoint.
    let post = write(
        dir.path(),
        "more.jsonl",
        &[&format!(
            r#"{{{HEAD},"client_id":"after-checkpoint","op":"pay_in_deposit","amount":"10.00"}}"#
        )],
    );
    assert!(run(&url, &["post", &post]).status.success());
    let ok = verify_with(&url, &checkpoint, &public);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(
        stdout(&ok).contains("the database extends the checkpoint"),
        "{}",
        stdout(&ok)
    );

    // An edited checkpoint, or one checked with another key, is refused first.
    let edited = dir.path().join("edited.json");
    let text = std::fs::read_to_string(&checkpoint).unwrap().replacen(
        &format!("\"seq\": {last_seq}"),
        &format!("\"seq\": {}", last_seq - 1),
        1,
    );
    std::fs::write(&edited, text).unwrap();
    let out = verify_with(&url, &edited.display().to_string(), &public);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("signature does not match its content: it was edited or forged"),
        "{}",
        stderr(&out)
    );
    let (_, other) = keygen(dir.path(), "someone-else.key");
    let out = verify_with(&url, &checkpoint, &other);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not by the public key given"),
        "{}",
        stderr(&out)
    );

    // A superuser drops the guards, deletes INS-410922-001's last entries
    // (and the one posted since) and puts totals and head back in line:
    // the plain verify is satisfied, the checkpoint is not.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for t in ["entries_no_delete", "postings_no_delete"] {
        conn.execute(format!("drop trigger {t}").as_str())
            .await
            .unwrap();
    }
    let cut = last_seq - 1;
    conn.execute(
        format!(
            "delete from postings where institution_id = 'INS-410922-001' and seq >= {cut}; \
             delete from entries where institution_id = 'INS-410922-001' and seq >= {cut}; \
             {MAKE_CONSISTENT}"
        )
        .as_str(),
    )
    .await
    .unwrap();
    conn.close().await.unwrap();
    let out = verify_with(&url, &checkpoint, &public);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "CHECKPOINT institution INS-410922-001 entries: the checkpoint has sequence {last_seq} hash"
        )) && text.contains(&format!("the database ends at {}", cut - 1)),
        "{text}"
    );
    // A database that does not verify is not attested.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    conn.execute("update enrollments set hours_consumed = hours_consumed + 1 where institution_id = 'INS-410922-002'")
        .await
        .unwrap();
    conn.close().await.unwrap();
    let no = dir.path().join("no.json");
    let out = run(
        &url,
        &["attest", "--key", &key, "--out", &no.display().to_string()],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing attested"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("MISMATCH institution INS-410922-002 enrollments: enrollment"),
        "{}",
        stdout(&out)
    );
    assert!(!no.exists());
}

#[tokio::test]
async fn a_signed_checkpoint_names_a_truncate_and_a_removed_institution_on_postgres() {
    let pg = ScratchPg::create(format!("el_test_cli_checkpoint_{}", std::process::id())).await;
    demo_summary(&pg.url);
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "bureau.key");
    let checkpoint = attest(&pg.url, &key, &dir.path().join("checkpoint.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    let seq_of = |id: &str| {
        doc["institutions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["institution"] == id)
            .unwrap()["entries"]["seq"]
            .as_i64()
            .unwrap()
    };

    let mut conn = PgConnection::connect(&pg.url).await.unwrap();
    // TRUNCATE is refused while the guards are on.
    let refused = conn.execute("truncate entries cascade").await.unwrap_err();
    assert!(
        refused.to_string().contains("TRUNCATE refused"),
        "{refused}"
    );
    // A superuser switches them off, removes an institution and empties the
    // entries of the others, and straightens totals and heads.
    conn.execute(
        format!(
            "set session_replication_role = replica; \
             delete from chain_heads where institution_id = 'INS-410922-003'; \
             delete from record_heads where institution_id = 'INS-410922-003'; \
             delete from institutions where institution_id = 'INS-410922-003'; \
             truncate entries cascade; {MAKE_CONSISTENT}"
        )
        .as_str(),
    )
    .await
    .unwrap();
    conn.close().await.unwrap();
    let out = verify_with(&pg.url, &checkpoint, &public);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("CHECKPOINT institution INS-410922-003: institution INS-410922-003 is in the checkpoint"),
        "{text}"
    );
    assert!(text.contains("but missing from the database"), "{text}");
    let seq = seq_of("INS-410922-001");
    assert!(
        text.contains(&format!(
            "CHECKPOINT institution INS-410922-001 entries: the checkpoint has sequence {seq} hash"
        )) && text.contains("the database ends at 0"),
        "{text}"
    );
    pg.drop().await;
}

/// A fixture of the bank-adapter's parser tests.
fn adapter_fixture(relative: &str) -> String {
    format!(
        "{}/../bank-adapter/tests/fixtures/{relative}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn feed_parse_json_prints_a_json_error_with_code_and_place_when_a_file_is_refused() {
    let file = adapter_fixture("camt/broken_bad_amount.xml");
    let out = bin()
        .args(["feed", "parse", "--json", &file])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["error"]["code"], "malformed_feed");
    assert_eq!(
        doc["error"]["path"],
        "Document/BkToCstmrStmt/Stmt[0]/Ntry[1]/Amt"
    );
    assert_eq!(doc["error"]["line"], 65);
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expected an unsigned decimal amount"));
    assert_eq!(doc["statements"].as_array().map(Vec::len), Some(0));

    let dir = tempfile::tempdir().unwrap();
    let junk = write(dir.path(), "junk.bin", &["\u{1}\u{2}garbage"]);
    let out = bin()
        .args(["feed", "parse", "--json", &junk])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["error"]["code"], "unknown_format");

    let missing = dir.path().join("missing.sta").display().to_string();
    let out = bin()
        .args(["feed", "parse", "--json", &missing])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["error"]["code"], "cannot_run");
}

#[test]
fn feed_parse_json_names_the_file_hash_once_and_numbers_messages_from_1() {
    let file = adapter_fixture("mt940/two_statements_one_message.sta");
    let out = bin()
        .args(["feed", "parse", "--json", &file])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sha = doc["file_sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert_eq!(text.matches(sha).count(), 1, "{text}");
    let s = &doc["statements"];
    assert_eq!(s[0]["source"]["message"], 1);
    assert_eq!(s[0]["lines"][0]["source"]["line"], 5);
    assert_eq!(s[0]["account"], "ABOCCNBJ/11223344556677");
    assert_eq!(s[1]["account"], "ABOCCNBJ/99887766554433");
}

#[test]
fn feed_parse_says_what_it_saw_in_a_file_of_an_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    let bai2 = write(
        dir.path(),
        "statement.bai",
        &[
            "01,BANK,CUST,260901,0800,1,,,2/",
            "02,CUST,BANK,1,260901,,CNY,2/",
        ],
    );
    let zip = dir.path().join("export.xlsx");
    std::fs::write(&zip, b"PK\x03\x04\x14\x00\x06\x00rest of a workbook").unwrap();
    let fragment = write(
        dir.path(),
        "fragment.sta",
        &[":61:2609010901C1,00NTRFREF", ":86:text"],
    );
    let cases = [
        (bai2, "BAI2"),
        (zip.display().to_string(), "zip archive"),
        (fragment, "without a :20:"),
    ];
    for (file, seen) in cases {
        let out = bin().args(["feed", "parse", &file]).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{file}");
        let err = stderr(&out);
        assert!(err.contains("[unknown_format]"), "{err}");
        assert!(err.contains(seen), "{file}: {err}");
        assert!(err.contains("supported: camt.052"), "{err}");
    }
}

#[test]
fn feed_parse_of_a_gbk_export_without_a_mapping_names_the_encoding_and_suggests_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let file = gbk_file(dir.path(), "export.csv", EXPORT);
    let out = bin().args(["feed", "parse", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("GBK/GB18030"), "{err}");
    assert!(err.contains("--mapping"), "{err}");
}

/// The peak resident memory (VmHWM, KiB) of a running child, polled until
/// it exits; the last reading before exit is the peak (it only grows).
fn peak_rss_kib(mut child: std::process::Child) -> (u64, std::process::ExitStatus) {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            return (peak, status);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Writes an MT940 file of at least `bytes` bytes: statements of 20 lines
/// each, chained. Returns the number of statements.
fn large_mt940(path: &Path, bytes: usize) -> u64 {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut balance = 0u64;
    let mut n = 0u64;
    let mut size = 0usize;
    while size < bytes {
        let mut m = format!(
            ":20:LARGE{n}\n:25:ABOCCNBJ/11223344556677\n:28C:{}/1\n:60F:C260901CNY{balance},00\n",
            n + 1
        );
        for j in 0..20 {
            m.push_str(&format!(
                ":61:2609010901C100,00NTRFXF{n}-{j}//ABC{n}-{j}\n:86:学费 订单 {n}-{j} tuition of one pupil for one term\n"
            ));
            balance += 100;
        }
        m.push_str(&format!(":62F:C260901CNY{balance},00\n-\n"));
        size += m.len();
        file.write_all(m.as_bytes()).unwrap();
        n += 1;
    }
    file.flush().unwrap();
    n
}

#[test]
fn feed_parse_streams_a_large_mt940_file_in_memory_that_does_not_grow_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |file: &Path, json: &Path| {
        let child = bin()
            .args(["feed", "parse", "--json"])
            .arg(file)
            .stdout(std::fs::File::create(json).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        peak_rss_kib(child)
    };
    // A 2 MiB file gives the process's own size with the parser at work.
    let small = dir.path().join("small.sta");
    large_mt940(&small, 2 << 20);
    let (baseline, status) = run(&small, &dir.path().join("small.json"));
    assert!(status.success());
    let large = dir.path().join("large.sta");
    let size = 24usize << 20;
    let n = large_mt940(&large, size);
    let out_path = dir.path().join("large.json");
    let (peak, status) = run(&large, &out_path);
    assert!(status.success());
    // Every statement was printed, and the document is complete.
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        out.trim_end().ends_with("\"warnings\": []}"),
        "{}",
        &out[out.len().saturating_sub(200)..]
    );
    assert_eq!(out.matches("\"statement_id\":\"LARGE").count() as u64, n);
    // Twelve times the file, twelve times the output: memory stays within
    // a quarter of the file of what the 2 MiB file needed. Holding the
    // file would cost all of it (24 MiB) and more; an eighth (3 MiB) was
    // once exceeded by 0.8 MiB on an unchanged parser, the two runs'
    // allocator arenas and threads differing by that much.
    let size_kib = (size / 1024) as u64;
    assert!(
        peak < baseline + size_kib / 4,
        "feed parse held {peak} KiB for a {size_kib} KiB file, {baseline} KiB for a 2048 KiB one"
    );
}

#[test]
fn feed_ingest_stores_each_statement_of_one_message_under_its_own_account() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    supervised_by_pyb(&url, "ABOCCNBJ/11223344556677", "INS-410922-001");
    let file = adapter_fixture("mt940/two_statements_one_message.sta");
    let out = run(&url, &["feed", "ingest", "--bank", "PYB", &file]);
    // The second statement is the second account's, which is not yet
    // supervised: the file is refused naming it, and nothing is stored.
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ABOCCNBJ/99887766554433"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &url,
        &[
            "bank",
            "account",
            "--bank",
            "PYB",
            "--account",
            "ABOCCNBJ/99887766554433",
            "--institution",
            "INS-410922-002",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = run_json(&url, &["feed", "ingest", "--bank", "PYB", "--json", &file]);
    assert_eq!(doc[0]["report"]["statements_stored"], 2, "{doc}");
    assert_eq!(doc[0]["report"]["lines_stored"], 2, "{doc}");
    // Several files, the last refused: the JSON still says what became of
    // the ones before it, and the refusal names the file.
    let junk = dir.path().join("junk.sta");
    std::fs::write(&junk, "not a statement\n").unwrap();
    let junk = junk.to_str().unwrap();
    let out = run(
        &url,
        &["feed", "ingest", "--bank", "PYB", "--json", &file, junk],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("junk.sta"), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc.as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc[0]["report"]["file_seen_before"], true, "{doc}");
}

#[test]
fn every_quirk_fixture_is_read_by_feed_parse_and_stored_by_feed_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    assert!(run(
        &url,
        &["bank", "add", "--id", "PYB", "--name", "Puyang Bank"]
    )
    .status
    .success());
    let fixtures = [
        "mt940/rabobank_dash_in_86.sta",
        "mt940/irregular_tx_types.sta",
        "mt940/cr_only.sta",
        "mt940/german_30_february.sta",
        "mt940/mt942_floor_without_comma.sta",
        "mt940/sub_between_statements.sta",
        "camt/camt053_latin1_declared.xml",
        "camt/camt053_gb18030_declared.xml",
        "camt/camt053_decimal_forms.xml",
    ];
    // One bank per fixture: the three camt fixtures are one statement
    // written three ways, which one bank would rightly refuse as a changed
    // statement.
    for (i, f) in fixtures.into_iter().enumerate() {
        let bank = format!("B{i}");
        assert!(
            run(&url, &["bank", "add", "--id", &bank, "--name", "A bank"])
                .status
                .success()
        );
        let mut registered = std::collections::BTreeSet::new();
        // The ledger keeps CNY, HKD and USD: the European banks' fixtures
        // are stored with their currency code read as CNY.
        let bytes = std::fs::read(adapter_fixture(f)).unwrap();
        let mut cny = bytes.clone();
        for code in [b"EUR", b"PLN", b"HUF"] {
            for at in 0..cny.len().saturating_sub(2) {
                if &cny[at..at + 3] == code {
                    cny[at..at + 3].copy_from_slice(b"CNY");
                }
            }
        }
        let path = dir.path().join(f.replace('/', "_"));
        std::fs::write(&path, &cny).unwrap();
        let file = path.display().to_string();
        let out = bin()
            .args(["feed", "parse", "--json", &file])
            .output()
            .unwrap();
        assert!(out.status.success(), "{f}: {}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        for s in doc["statements"].as_array().unwrap() {
            let account = s["account"].as_str().unwrap().to_owned();
            let currency = s["currency"].as_str().unwrap();
            if registered.insert(account.clone()) {
                let out = run(
                    &url,
                    &[
                        "bank",
                        "account",
                        "--bank",
                        &bank,
                        "--account",
                        &account,
                        "--institution",
                        "INS-410922-001",
                        "--currency",
                        currency,
                    ],
                );
                assert!(out.status.success(), "{f}: {}", stderr(&out));
            }
        }
        let report = run_json(&url, &["feed", "ingest", "--bank", &bank, "--json", &file]);
        let stored = report[0]["report"]["statements_stored"].as_u64().unwrap();
        assert_eq!(
            stored as usize,
            doc["statements"].as_array().unwrap().len(),
            "{f}: {report}"
        );
    }
}

#[test]
fn the_shipped_chinese_bank_mappings_read_and_store_their_exports() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    demo_summary(&url);
    let mappings = format!("{}/../bank-adapter/mappings", env!("CARGO_MANIFEST_DIR"));
    let cases = [
        ("csv/cn_debit_credit_gbk.csv", "cn-debit-credit.json"),
        (
            "csv/cn_debit_credit_gb18030_bom.csv",
            "cn-debit-credit.json",
        ),
        ("csv/cn_signed_amount_gb18030.csv", "cn-signed-amount.json"),
        ("csv/cn_direction_gbk.csv", "cn-direction.json"),
        ("csv/cn_direction_utf8_bom.csv", "cn-direction.json"),
        ("csv/cn_direction.xlsx", "cn-direction.json"),
    ];
    for (i, (file, mapping)) in cases.into_iter().enumerate() {
        let file = adapter_fixture(file);
        let mapping = format!("{mappings}/{mapping}");
        let doc = run_json(
            &url,
            &["feed", "parse", "--mapping", &mapping, "--json", &file],
        );
        let account = doc["statements"][0]["account"].as_str().unwrap().to_owned();
        let lines = doc["statements"][0]["lines"].as_array().unwrap().len();
        assert_eq!(lines, 3, "{file}");
        // One bank per file: two files are the same export in two encodings.
        let bank = format!("CN{i}");
        assert!(run(
            &url,
            &["bank", "add", "--id", &bank, "--name", "County bank"]
        )
        .status
        .success());
        let out = run(
            &url,
            &[
                "bank",
                "account",
                "--bank",
                &bank,
                "--account",
                &account,
                "--institution",
                "INS-410922-001",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let report = run_json(
            &url,
            &[
                "feed",
                "ingest",
                "--bank",
                &bank,
                "--mapping",
                &mapping,
                "--json",
                &file,
            ],
        );
        assert_eq!(report[0]["report"]["lines_stored"], 3, "{file}: {report}");
    }
}

#[test]
fn an_xlsx_export_is_read_with_a_mapping_and_refused_without_one_saying_so() {
    let file = adapter_fixture("csv/cn_direction.xlsx");
    let out = bin().args(["feed", "parse", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains(".xlsx workbook"), "{err}");
    assert!(err.contains("--mapping"), "{err}");
    let mapping = format!(
        "{}/../bank-adapter/mappings/cn-direction.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = bin()
        .args(["feed", "parse", "--mapping", &mapping, "--json", &file])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["statements"][0]["lines"][2]["amount"], "1000.5");
}

/// The service killed with SIGKILL while sixteen clients post single
/// payments (gathered into group commits): every payment a client had an
/// answer for is in the books once, with the very answer kept under its
/// key, before anything is sent again; the books verify.
async fn acknowledged_group_commits_survive_a_kill(url: &str) {
    assert!(run(url, &["demo"]).status.success());
    let token = run_json(
        url,
        &[
            "token",
            "create",
            "--role",
            "platform",
            "--jurisdiction",
            "410922",
            "--json",
        ],
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    let served = serve(url, &[]);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let schools = ["INS-410922-001", "INS-410922-002"];
    for school in schools {
        let r = client
            .post(format!(
                "http://{}/v1/institutions/{school}/enrollments",
                served.addr
            ))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("enr-{school}"))
            .json(&serde_json::json!({"id": "E-GROUP", "student_ref": "S-G",
                "hours_bought": 40, "price": "4000.00",
                "course_start": "2026-09-01", "course_end": "2026-11-30"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    }
    let (acked_tx, mut acked_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for w in 0..16 {
        let client = client.clone();
        let token = token.clone();
        let addr = served.addr.clone();
        let acked_tx = acked_tx.clone();
        workers.push(tokio::spawn(async move {
            for n in 0..100_000 {
                let key = format!("g-{w}-{n}");
                let school = schools[(w + n) % 2];
                let sent = client
                    .post(format!("http://{addr}/v1/institutions/{school}/payments"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", &key)
                    .json(&serde_json::json!({"enrollment": "E-GROUP", "amount": "0.01"}))
                    .send()
                    .await;
                let Ok(r) = sent else { return };
                if r.status() == reqwest::StatusCode::CREATED {
                    let Ok(text) = r.text().await else { return };
                    let _ = acked_tx.send((key, text));
                }
            }
        }));
    }
    drop(acked_tx);
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    served.kill();
    for w in workers {
        w.await.unwrap();
    }
    let mut acked = Vec::new();
    while let Some(a) = acked_rx.recv().await {
        acked.push(a);
    }
    assert!(
        acked.len() >= 16,
        "the load ran: {} acknowledged",
        acked.len()
    );

    let store = ledger_core::Store::connect(url).await.unwrap();
    let one = |sql: &'static str, key: String| {
        let store = store.clone();
        async move {
            match &store {
                ledger_core::Store::Postgres(s) => sqlx::query_as::<_, (i64, Option<String>)>(sql)
                    .bind(key)
                    .fetch_one(s.pool())
                    .await
                    .unwrap(),
                ledger_core::Store::Sqlite(s) => sqlx::query_as::<_, (i64, Option<String>)>(sql)
                    .bind(key)
                    .fetch_one(s.pool())
                    .await
                    .unwrap(),
            }
        }
    };
    for (key, answer) in &acked {
        let (entries, _) = one(
            "select cast(count(*) as bigint), max(client_id) from entries where client_id = $1",
            key.clone(),
        )
        .await;
        assert_eq!(entries, 1, "{key}: acknowledged, so in the books once");
        let (kept, body) = one(
            "select cast(count(*) as bigint), max(body) from idempotent_answers where idem_key = $1",
            key.clone(),
        )
        .await;
        assert_eq!(kept, 1, "{key}: its answer kept");
        assert_eq!(body.as_deref(), Some(answer.as_str()), "{key}");
    }
    store.close().await;
    let out = run(url, &["verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[tokio::test]
async fn acknowledged_group_commits_survive_a_kill_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    acknowledged_group_commits_survive_a_kill(&sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn acknowledged_group_commits_survive_a_kill_on_postgres() {
    let pg = ScratchPg::create(format!("el_test_cli_group_kill_{}", std::process::id())).await;
    acknowledged_group_commits_survive_a_kill(&pg.url).await;
    pg.drop().await;
}

#[test]
fn simulate_refuses_too_few_days_for_its_run_offs_and_creates_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let into = sqlite_url(dir.path());
    let out = bin()
        .args(["simulate", "--seed", "3", "--healthy", "2", "--days", "5"])
        .args(["--pattern", "1", "--into", &into])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("--days 5: a county with run-offs needs at least 12 measured days"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    assert!(!dir.path().join("county.db").exists());
}

/// `jobs` (as `serve`) says at start when PostgreSQL will not keep the
/// planner's statistics (autovacuum off: plans made for small tables stay
/// in use as they grow), and what to do; on a server that keeps them, and
/// on SQLite, it says nothing of it.
#[tokio::test]
async fn jobs_warn_at_start_when_postgres_keeps_no_planner_statistics() {
    let pg = ScratchPg::create(format!("el_test_cli_autovacuum_{}", std::process::id())).await;
    let mut conn = PgConnection::connect(&pg.url).await.unwrap();
    let keeps: bool = sqlx::query_scalar(
        "select current_setting('autovacuum') = 'on' and current_setting('track_counts') = 'on'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let jobs = |url: &str| {
        let out = bin()
            .env("RUST_LOG", "warn")
            .arg("--database-url")
            .arg(url)
            .args(["jobs", "--only", "risk"])
            .output()
            .unwrap();
        assert!(out.status.success(), "jobs: {}", stderr(&out));
        stderr(&out)
    };
    let said = jobs(&pg.url);
    assert_eq!(
        said.contains("autovacuum (or track_counts) off") && said.contains("ANALYZE"),
        !keeps,
        "autovacuum kept: {keeps}; jobs said: {said}"
    );
    let dir = tempfile::tempdir().unwrap();
    assert!(!jobs(&sqlite_url(dir.path())).contains("autovacuum"));
    pg.drop().await;
}
