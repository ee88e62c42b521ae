//! The contract of the `Store` trait, run against both stores
//! (`sqlite::*` and `mongo::*`, see `store_tests!`).

use crate::common::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokend::core::clock::truncate_ms;
use tokend::core::credential::TokenHash;
use tokend::core::ids::new_user_id;
use tokend::core::model::*;
use tokend::core::userquery;
use tokend::store::*;

type Delta = chrono::Duration;

fn now() -> Timestamp {
    truncate_ms(chrono::Utc::now())
}

async fn open(kind: &StoreKind) -> Arc<dyn Store> {
    kind.open(&test_config()).await
}

fn user(name: &str) -> User {
    let t = now();
    User {
        id: new_user_id(),
        created_at: t,
        updated_at: t,
        kind: "user".into(),
        username: Some(name.into()),
        name: Some(format!("{name} name")),
        emails: vec![Email {
            address: format!("{name}@example.com"),
            verified: true,
        }],
        roles: vec!["user".into()],
        permissions: Vec::new(),
        active: true,
        require_password_change: false,
        password_bcrypt: Some(PasswordHash(
            "$2b$10$abcdefghijklmnopqrstuuP9x9BqkFNk1a0xRbGEtPY4uD1w1nQnK".into(),
        )),
        last_login: Some(t),
    }
}

async fn inserted(store: &Arc<dyn Store>, name: &str) -> User {
    let u = user(name);
    store.insert_user(&u).await.expect("insert");
    u
}

/// A stored token hash (the contract never needs real hashes).
fn h(hash: &str) -> TokenHash {
    TokenHash::from_stored(hash)
}

fn resume(when: Timestamp, hash: &str) -> ResumeToken {
    ResumeToken {
        when,
        hashed_token: h(hash),
    }
}

fn pat(name: &str, hash: &str) -> PersonalAccessToken {
    PersonalAccessToken {
        hashed_token: h(hash),
        created_at: now(),
        last_token_part: "abcdef".into(),
        name: name.into(),
        bypass_two_factor: false,
        expires_at: None,
        last_used_at: None,
    }
}

async fn reload(store: &Arc<dyn Store>, id: &str) -> User {
    store
        .find_user(&UserKey::Id(id.into()))
        .await
        .expect("store")
        .expect("user exists")
}

async fn tokens(store: &Arc<dyn Store>, id: &str) -> Vec<LoginToken> {
    store.tokens_of(id).await.expect("store")
}

fn pats(tokens: &[LoginToken]) -> Vec<PersonalAccessToken> {
    tokens
        .iter()
        .filter_map(|t| match t {
            LoginToken::Personal(p) => Some(p.clone()),
            LoginToken::Resume(_) => None,
        })
        .collect()
}

/// The hashes of a user's login tokens (not PATs).
async fn resume_hashes(store: &Arc<dyn Store>, id: &str) -> BTreeSet<String> {
    tokens(store, id)
        .await
        .iter()
        .filter_map(|t| match t {
            LoginToken::Resume(r) => Some(r.hashed_token.as_str().to_string()),
            LoginToken::Personal(_) => None,
        })
        .collect()
}

/// The names of a user's PATs.
async fn pat_names(store: &Arc<dyn Store>, id: &str) -> BTreeSet<String> {
    pats(&tokens(store, id).await)
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// The owner's id and the entry found for a hash.
async fn owner_of(
    store: &Arc<dyn Store>,
    user_id: Option<&str>,
    hash: &str,
) -> Option<(String, LoginToken)> {
    store
        .find_by_token(user_id, &h(hash))
        .await
        .expect("store")
        .map(|(u, t)| (u.id, t))
}

fn session(user_id: &str, t0: Timestamp) -> Session {
    Session {
        hashed_id: h(&format!("session-{}", new_user_id())),
        user_id: user_id.into(),
        created_at: t0,
        last_seen_at: t0,
        expires_at: t0 + Delta::hours(1),
        absolute_expires_at: t0 + Delta::hours(24),
    }
}

store_tests! {
    async fn ping_answers(kind) {
        open(&kind).await.ping().await.expect("ping");
    }

    async fn roles_are_ensured_never_overwritten(kind) {
        let store = open(&kind).await;
        let role = Role {
            id: "auditor".into(),
            name: "auditor".into(),
            scope: "Users".into(),
            description: "first".into(),
            protected: true,
            updated_at: Some(now()),
        };
        store.ensure_role(&role).await.unwrap();
        store
            .ensure_role(&Role { description: "second".into(), ..role.clone() })
            .await
            .unwrap();
        // A role without a recorded write time reads back without one.
        let old = Role { id: "old".into(), name: "old".into(), updated_at: None, ..role.clone() };
        store.ensure_role(&old).await.unwrap();
        let roles = store.roles().await.unwrap();
        assert_eq!(roles.iter().filter(|r| r.id == "auditor").collect::<Vec<_>>(), vec![&role]);
        assert_eq!(roles.iter().filter(|r| r.id == "old").collect::<Vec<_>>(), vec![&old]);
    }

    async fn permissions_are_ensured_never_overwritten_and_set_explicitly(kind) {
        let store = open(&kind).await;
        let seeded = now() - chrono::Duration::days(1);
        let p = PermissionEntry { id: "do-things".into(), roles: vec!["admin".into()], updated_at: Some(seeded) };
        store.ensure_permission(&p).await.unwrap();
        // An operator's change survives the next start-up's ensure, and
        // records when it was made.
        let changed = now();
        store.set_permission_roles("do-things", &["admin".into(), "user".into()], changed).await.unwrap();
        store.ensure_permission(&p).await.unwrap();
        // Setting creates a missing permission.
        store.set_permission_roles("new-perm", &["bot".into()], changed).await.unwrap();
        let untimed = PermissionEntry { id: "untimed".into(), roles: vec![], updated_at: None };
        store.ensure_permission(&untimed).await.unwrap();
        let mut all = store.permissions().await.unwrap();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(
            all,
            vec![
                PermissionEntry { id: "do-things".into(), roles: vec!["admin".into(), "user".into()], updated_at: Some(changed) },
                PermissionEntry { id: "new-perm".into(), roles: vec!["bot".into()], updated_at: Some(changed) },
                untimed,
            ]
        );
    }

    async fn users_in_roles_pages_the_holders_of_any_role(kind) {
        let store = open(&kind).await;
        let mut names = Vec::new();
        for (name, roles) in [("dora", vec!["user", "bot"]), ("amy", vec!["admin"]), ("cid", vec!["user"]),
                              ("bea", vec!["bot"]), ("eve", vec!["guest", "botany"])] {
            let mut u = user(name);
            u.roles = roles.into_iter().map(String::from).collect();
            store.insert_user(&u).await.unwrap();
            names.push(name);
        }
        let usernames = |users: &[User]| users.iter().map(|u| u.username.clone().unwrap()).collect::<Vec<_>>();
        let (page, total) = store.users_in_roles(&["bot".into()], 0, 10).await.unwrap();
        assert_eq!((usernames(&page), total), (vec!["bea".to_string(), "dora".to_string()], 2));
        // Exact role ids only: "botany" is not "bot".
        let (page, total) = store.users_in_roles(&["bot".into(), "admin".into()], 1, 1).await.unwrap();
        assert_eq!((usernames(&page), total), (vec!["bea".to_string()], 3));
        assert_eq!(page[0].emails, user("bea").emails, "full users, emails included");
        let (page, total) = store.users_in_roles(&["nobody".into()], 0, 10).await.unwrap();
        assert_eq!((page.len(), total), (0, 0));
        let (page, total) = store.users_in_roles(&["user".into()], 0, 0).await.unwrap();
        assert_eq!((page.len(), total), (0, 2));
    }

    async fn users_round_trip_and_are_found_by_every_key(kind) {
        let store = open(&kind).await;
        assert_eq!(store.count_users().await.unwrap(), 0);
        let mut u = user("Alice");
        u.permissions = vec!["manage-users".into()];
        u.require_password_change = true;
        store.insert_user(&u).await.unwrap();
        inserted(&store, "bob").await;
        assert_eq!(store.count_users().await.unwrap(), 2);
        // Tokens live apart from the user: adding them leaves the user as it was.
        let r = resume(now(), "hash-r");
        let p = pat("ci", "hash-p");
        store.push_login_token(&UserKey::Id(u.id.clone()), &r, 50).await.unwrap();
        store.add_personal_access_token(&u.id, &p, 50).await.unwrap();
        assert_eq!(
            tokens(&store, &u.id).await,
            vec![LoginToken::Resume(r), LoginToken::Personal(p)]
        );
        assert!(tokens(&store, "no-such-user").await.is_empty());
        for key in [
            UserKey::Id(u.id.clone()),
            UserKey::Username("alice".into()),
            UserKey::Username("ALICE".into()),
            UserKey::Email("ALICE@Example.com".into()),
            UserKey::Login("aLiCe".into()),
            UserKey::Login("alice@EXAMPLE.com".into()),
        ] {
            assert_eq!(store.find_user(&key).await.unwrap().as_ref(), Some(&u), "{key:?}");
        }
        for key in [
            UserKey::Id(u.id.to_lowercase()),
            UserKey::Username("alic".into()),
            UserKey::Email("alice@example.co".into()),
            UserKey::Login("nobody".into()),
        ] {
            assert_eq!(store.find_user(&key).await.unwrap(), None, "{key:?}");
        }
    }

    async fn lookups_treat_input_literally(kind) {
        let store = open(&kind).await;
        let dotted = inserted(&store, "a.b").await;
        for probe in ["aXb", "a.*", ".*", "^a.b$", "a\\.b", "(a.b)", "a.b\0"] {
            assert_eq!(store.find_user(&UserKey::Username(probe.into())).await.unwrap(), None, "{probe}");
            assert_eq!(store.find_user(&UserKey::Login(probe.into())).await.unwrap(), None, "{probe}");
        }
        assert_eq!(store.find_user(&UserKey::Username("A.B".into())).await.unwrap(), Some(dotted));
        let punct = inserted(&store, "a_b-c d#e%f@g~h`i&j!k\"l'm,n;o:p<q>r=s").await;
        assert_eq!(
            store
                .find_user(&UserKey::Username("A_B-C D#E%F@G~H`I&J!K\"L'M,N;O:P<Q>R=S".into()))
                .await
                .unwrap(),
            Some(punct)
        );
        let odd = inserted(&store, "x+y(z)[1]{2}|$^?").await;
        assert_eq!(
            store.find_user(&UserKey::Username("X+Y(Z)[1]{2}|$^?".into())).await.unwrap(),
            Some(odd)
        );
    }

    async fn usernames_and_emails_are_unique_ignoring_case(kind) {
        let store = open(&kind).await;
        let bob = inserted(&store, "bob").await;
        let mut same_name = user("BOB");
        same_name.emails[0].address = "other@example.com".into();
        assert!(matches!(store.insert_user(&same_name).await, Err(StoreError::Duplicate(UniqueField::Username))));
        let mut same_email = user("robert");
        same_email.emails[0].address = "Bob@EXAMPLE.com".into();
        assert!(matches!(store.insert_user(&same_email).await, Err(StoreError::Duplicate(UniqueField::Email))));
        let same_id = User { id: bob.id.clone(), ..user("carol") };
        assert!(matches!(store.insert_user(&same_id).await, Err(StoreError::Duplicate(UniqueField::Other))));
        // Failed inserts leave nothing behind: the names they tried are still free.
        inserted(&store, "robert").await;
        inserted(&store, "carol").await;
        assert_eq!(store.count_users().await.unwrap(), 3);
        // Users without email do not clash with each other.
        for name in ["bot1", "bot2"] {
            let mut u = user(name);
            u.emails.clear();
            store.insert_user(&u).await.unwrap();
        }
    }

    async fn token_hash_lookup_with_and_without_user_id(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let bob = inserted(&store, "bob").await;
        store.push_login_token(&UserKey::Id(alice.id.clone()), &resume(now(), "h-alice"), 50).await.unwrap();
        store.add_personal_access_token(&bob.id, &pat("ci", "h-bob-pat"), 50).await.unwrap();
        let (found, entry) = store.find_by_token(None, &h("h-alice")).await.unwrap().unwrap();
        assert_eq!(found, alice);
        assert_eq!(entry.hashed_token(), &h("h-alice"));
        let (found, _) = store.find_by_token(Some(&alice.id), &h("h-alice")).await.unwrap().unwrap();
        assert_eq!(found.id, alice.id);
        assert_eq!(store.find_by_token(Some(&bob.id), &h("h-alice")).await.unwrap(), None);
        let (found, entry) = store.find_by_token(Some(&bob.id), &h("h-bob-pat")).await.unwrap().unwrap();
        assert_eq!(found, bob);
        assert_eq!(entry, LoginToken::Personal(pats(&tokens(&store, &bob.id).await).remove(0)));
        assert_eq!(store.find_by_token(None, &h("nope")).await.unwrap(), None);
    }

    async fn find_by_token_returns_only_the_presented_entry(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let key = UserKey::Id(alice.id.clone());
        let base = now();
        let older = resume(base, "r-old");
        let newer = resume(base + Delta::milliseconds(5), "r-new");
        store.push_login_token(&key, &older, 50).await.unwrap();
        store.push_login_token(&key, &newer, 50).await.unwrap();
        let mut ci = pat("ci", "p-ci");
        ci.bypass_two_factor = true;
        store.add_personal_access_token(&alice.id, &ci, 50).await.unwrap();
        store.add_personal_access_token(&alice.id, &pat("other", "p-other"), 50).await.unwrap();
        assert_eq!(tokens(&store, &alice.id).await.len(), 4);
        // Each lookup answers with exactly the entry presented, whole.
        for (hash, expected) in [
            ("r-old", LoginToken::Resume(older)),
            ("r-new", LoginToken::Resume(newer)),
            ("p-ci", LoginToken::Personal(ci)),
        ] {
            for user_id in [None, Some(alice.id.as_str())] {
                assert_eq!(
                    store.find_by_token(user_id, &h(hash)).await.unwrap(),
                    Some((alice.clone(), expected.clone())),
                    "{hash} {user_id:?}"
                );
            }
        }
    }

    /// A lookup right after a write sees it, whatever lookups came before
    /// (the SQLite store answers repeated tokens from memory: this is the
    /// rule its cache must keep).
    async fn a_token_lookup_sees_every_write_made_after_the_last(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let key = UserKey::Id(alice.id.clone());
        let found = |hash: &'static str| { let store = &store; async move {
            store.find_by_token(None, &h(hash)).await.unwrap().map(|(user, _)| user) } };
        store.push_login_token(&key, &resume(now(), "r1"), 50).await.unwrap();
        store.push_login_token(&key, &resume(now(), "r2"), 50).await.unwrap();
        assert!(found("r1").await.is_some() && found("r1").await.is_some());

        // A user change: the next lookup answers the changed user.
        let patch = UserPatch { roles: Some(vec!["bot".into()]), name: Some("Renamed".into()), ..UserPatch::default() };
        store.update_user(&alice.id, &patch, now(), AdminGuard::Off).await.unwrap().unwrap();
        let user = found("r1").await.unwrap();
        assert_eq!((user.roles, user.name.as_deref()), (vec!["bot".to_string()], Some("Renamed")));
        let off = UserPatch { active: Some(false), ..UserPatch::default() };
        store.update_user(&alice.id, &off, now(), AdminGuard::Off).await.unwrap().unwrap();
        assert!(!found("r1").await.unwrap().active, "a deactivation is seen at once");

        // A removed token is gone at the next lookup.
        assert!(found("r2").await.is_some());
        assert!(store.remove_login_token(&alice.id, &h("r2")).await.unwrap());
        assert_eq!(found("r2").await, None);
        assert!(found("r1").await.is_some());
        assert_eq!(store.remove_login_tokens(&alice.id, None).await.unwrap(), 1);
        assert_eq!(found("r1").await, None);

        // So is a deleted user's.
        store.push_login_token(&key, &resume(now(), "r3"), 50).await.unwrap();
        assert!(found("r3").await.is_some());
        assert!(store.delete_user(&alice.id, AdminGuard::Off).await.unwrap().unwrap());
        assert_eq!(found("r3").await, None);
    }

    async fn list_users_pages_sorted_by_username(kind) {
        let store = open(&kind).await;
        for name in ["delta", "alpha", "charlie", "bravo", "echo"] {
            inserted(&store, name).await;
        }
        let names = |page: &[User]| page.iter().map(|u| u.username.clone().unwrap()).collect::<Vec<_>>();
        let (page, total) = store.list_users(0, 2).await.unwrap();
        assert_eq!((names(&page), total), (vec!["alpha".to_string(), "bravo".into()], 5));
        let (page, _) = store.list_users(2, 2).await.unwrap();
        assert_eq!(names(&page), vec!["charlie".to_string(), "delta".into()]);
        let (page, _) = store.list_users(4, 10).await.unwrap();
        assert_eq!(names(&page), vec!["echo".to_string()]);
        let (page, total) = store.list_users(10, 10).await.unwrap();
        assert!(page.is_empty() && total == 5);
        let (page, total) = store.list_users(0, 0).await.unwrap();
        assert!(page.is_empty() && total == 5);
    }

    /// `find_users`: the filter semantics of `core::userquery` (arrays
    /// test their elements, `$ne`/`$nin` match a missing value, `$regex`
    /// never does, case matters but with `i`), its orders (a missing value
    /// first ascending, ties by `_id`) and paging, the same on both stores.
    async fn find_users_filters_sorts_and_pages_alike(kind) {
        let store = open(&kind).await;
        let t = now();
        let mut alice = user("alice");
        alice.name = Some("Alice A".into());
        alice.created_at = t - Delta::minutes(4);
        let mut bob = user("bob");
        bob.name = None;
        bob.active = false;
        bob.roles = vec!["user".into(), "admin".into()];
        bob.created_at = t - Delta::minutes(3);
        let mut carol = user("Carol");
        carol.name = Some("Carol C".into());
        carol.kind = "bot".into();
        carol.roles = vec!["bot".into()];
        carol.emails = Vec::new();
        carol.created_at = t - Delta::minutes(2);
        let mut dave = user("dave");
        dave.name = Some("dave d".into());
        dave.roles = vec!["guest".into()];
        dave.emails.push(Email { address: "dave@example.org".into(), verified: false });
        dave.created_at = t - Delta::minutes(1);
        for u in [&alice, &bob, &carol, &dave] {
            store.insert_user(u).await.unwrap();
        }
        let find = |q: String, sort: &str, offset: u64, count: u64| {
            let store = store.clone();
            let sort = sort.to_string();
            async move {
                let query = UserQuery {
                    filter: userquery::parse_filter(&q, true).unwrap_or_else(|e| panic!("{q}: {e}")),
                    sort: userquery::parse_sort(&sort).unwrap(),
                    offset,
                    count,
                };
                let (page, total) = store.find_users(&query).await.unwrap_or_else(|e| panic!("{q}: {e}"));
                (page.iter().map(|u| u.username.clone().unwrap()).collect::<Vec<_>>(), total)
            }
        };
        let cases: Vec<(String, &[&str])> = vec![
            (r#"{"username":"alice"}"#.into(), &["alice"]),
            (r#"{"active":false}"#.into(), &["bob"]),
            (r#"{"active":{"$ne":false}}"#.into(), &["Carol", "alice", "dave"]),
            (r#"{"roles":"admin"}"#.into(), &["bob"]),
            (r#"{"roles":{"$ne":"user"}}"#.into(), &["Carol", "dave"]),
            (r#"{"roles":{"$in":["bot","admin"]}}"#.into(), &["Carol", "bob"]),
            (r#"{"roles":{"$nin":["user"]}}"#.into(), &["Carol", "dave"]),
            (r#"{"roles":{"$exists":true}}"#.into(), &["Carol", "alice", "bob", "dave"]),
            (r#"{"name":{"$exists":false}}"#.into(), &["bob"]),
            (r#"{"name":{"$ne":"Alice A"}}"#.into(), &["Carol", "bob", "dave"]),
            (r#"{"name":{"$nin":["Alice A","dave d"]}}"#.into(), &["Carol", "bob"]),
            (r#"{"name":{"$in":[]}}"#.into(), &[]),
            (r#"{"name":{"$regex":"^a","$options":"i"}}"#.into(), &["alice"]),
            (r#"{"name":{"$regex":"^[Cd][a-z]+ [Cd]$"}}"#.into(), &["Carol", "dave"]),
            (r#"{"username":{"$regex":"^c"}}"#.into(), &[]),
            (r#"{"username":{"$regex":"^c","$options":"i"}}"#.into(), &["Carol"]),
            (r#"{"username":{"$regex":"o|v"}}"#.into(), &["Carol", "bob", "dave"]),
            (r#"{"emails.address":{"$regex":"example\\.org$"}}"#.into(), &["dave"]),
            (r#"{"emails.address":"dave@example.org"}"#.into(), &["dave"]),
            (r#"{"emails.address":"DAVE@example.org"}"#.into(), &[]),
            (r#"{"emails.address":{"$exists":false}}"#.into(), &["Carol"]),
            (r#"{"emails.address":{"$ne":"alice@example.com"}}"#.into(), &["Carol", "bob", "dave"]),
            (r#"{"type":"bot"}"#.into(), &["Carol"]),
            (r#"{"$or":[{"username":"alice"},{"type":"bot"}]}"#.into(), &["Carol", "alice"]),
            (r#"{"$and":[{"active":true},{"roles":"user"}]}"#.into(), &["alice"]),
            (r#"{"active":true,"roles":{"$in":["user","guest"]}}"#.into(), &["alice", "dave"]),
            (format!(r#"{{"_id":{{"$in":["{}","{}"]}}}}"#, alice.id, dave.id), &["alice", "dave"]),
            (format!(r#"{{"_id":{{"$eq":"{}"}}}}"#, bob.id), &["bob"]),
        ];
        for (q, want) in cases {
            let (names, total) = find(q.clone(), "", 0, 10).await;
            assert_eq!(names, want, "{q}");
            assert_eq!(total, want.len() as u64, "{q}");
        }
        // Orders: a missing name first ascending, last descending; bytes, so
        // capitals first; createdAt; ties by _id.
        let all = "{}".to_string();
        assert_eq!(find(all.clone(), r#"{"name":1}"#, 0, 10).await.0, ["bob", "alice", "Carol", "dave"]);
        assert_eq!(find(all.clone(), r#"{"name":-1}"#, 0, 10).await.0, ["dave", "Carol", "alice", "bob"]);
        assert_eq!(find(all.clone(), r#"{"createdAt":-1}"#, 0, 10).await.0, ["dave", "Carol", "bob", "alice"]);
        assert_eq!(find(all.clone(), r#"{"active":1,"createdAt":-1}"#, 0, 10).await.0, ["bob", "dave", "Carol", "alice"]);
        // Carol is the one "bot"; the three "user"s tie, and go by _id.
        let mut users = [(&alice.id, "alice"), (&bob.id, "bob"), (&dave.id, "dave")];
        users.sort();
        let mut want = vec!["Carol"];
        want.extend(users.iter().map(|(_, n)| *n));
        assert_eq!(find(all.clone(), r#"{"type":1}"#, 0, 10).await.0, want);
        // Paging under a filter: total counts the filtered set.
        let q = r#"{"roles":{"$ne":"admin"}}"#.to_string();
        assert_eq!(find(q.clone(), "", 1, 1).await, (vec!["alice".to_string()], 3));
        assert_eq!(find(q.clone(), "", 5, 10).await, (vec![], 3));
        assert_eq!(find(q.clone(), "", 0, 0).await, (vec![], 3));
    }

    /// `importId`: the SQLite store holds no import ids; an unknown one
    /// names nobody on either store (MongoDB's match: `mongo_layout`).
    async fn find_user_by_unknown_import_id_is_none(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        for key in [alice.id.clone(), "alice".into(), "nope".into()] {
            assert_eq!(store.find_user(&UserKey::ImportId(key)).await.unwrap(), None);
        }
    }

    async fn the_admin_guard_keeps_the_last_active_admin(kind) {
        let store = open(&kind).await;
        let admin = |name: &str, active: bool| {
            let mut u = user(name);
            u.roles = vec!["user".into(), "admin".into()];
            u.active = active;
            u
        };
        let guard = AdminGuard::KeepLastAdmin;
        let t = now();
        let off = UserPatch { active: Some(false), ..UserPatch::default() };
        let demote = UserPatch { roles: Some(vec!["user".into()]), ..UserPatch::default() };
        let first = admin("first", true);
        store.insert_user(&first).await.unwrap();
        let plain = inserted(&store, "plain").await;
        store.insert_user(&admin("sleeping", false)).await.unwrap();
        store.push_login_token(&UserKey::Id(first.id.clone()), &resume(t, "f1"), 50).await.unwrap();

        // The last active admin: neither deactivated, demoted nor deleted;
        // a refused patch writes nothing of itself (name, token removal).
        let refused = UserPatch { name: Some("gone".into()), clear_login_tokens: true, ..off.clone() };
        assert_eq!(store.update_user(&first.id, &refused, t, guard).await.unwrap(), Err(LastAdmin));
        assert_eq!(store.update_user(&first.id, &demote, t, guard).await.unwrap(), Err(LastAdmin));
        assert_eq!(store.delete_user(&first.id, guard).await.unwrap(), Err(LastAdmin));
        let kept = reload(&store, &first.id).await;
        assert!(kept.is_active_admin());
        assert_eq!(kept.name, first.name);
        assert_eq!(resume_hashes(&store, &first.id).await, ["f1".to_string()].into());

        // Guarded writes that leave it an active admin, or touch others, go through.
        let renamed = UserPatch { name: Some("First".into()), ..UserPatch::default() };
        let renamed = store.update_user(&first.id, &renamed, t, guard).await.unwrap().unwrap().unwrap();
        assert_eq!(renamed.name.as_deref(), Some("First"));
        assert!(!store.update_user(&plain.id, &off, t, guard).await.unwrap().unwrap().unwrap().active);
        assert!(store.delete_user(&plain.id, guard).await.unwrap().unwrap());
        assert_eq!(store.update_user("nobody", &off, t, guard).await.unwrap(), Ok(None));
        assert_eq!(store.delete_user("nobody", guard).await.unwrap(), Ok(false));

        // With another active admin, either may go, but not both.
        let second = admin("second", true);
        store.insert_user(&second).await.unwrap();
        assert!(!store.update_user(&first.id, &off, t, guard).await.unwrap().unwrap().unwrap().active);
        assert_eq!(store.update_user(&second.id, &off, t, guard).await.unwrap(), Err(LastAdmin));
        assert_eq!(store.delete_user(&second.id, guard).await.unwrap(), Err(LastAdmin));
        // An inactive admin does not count, and is no admin to keep.
        let sleeping = store.find_user(&UserKey::Username("sleeping".into())).await.unwrap().unwrap();
        assert!(store.delete_user(&sleeping.id, guard).await.unwrap().unwrap());

        // Unguarded, the store writes as asked (the core decides when to guard).
        assert!(!store.update_user(&second.id, &off, t, AdminGuard::Off).await.unwrap().unwrap().unwrap().active);
    }

    async fn the_admin_guard_holds_under_concurrent_removals(kind) {
        let store = open(&kind).await;
        let mut admins = Vec::new();
        for i in 0..6 {
            let mut u = user(&format!("admin{i}"));
            u.roles = vec!["admin".into()];
            store.insert_user(&u).await.unwrap();
            admins.push(u);
        }
        let off = UserPatch { active: Some(false), ..UserPatch::default() };
        let t = now();
        // Half deactivate, half delete, all at once.
        let removals = admins.iter().enumerate().map(|(i, u)| {
            let (store, id, off) = (store.clone(), u.id.clone(), off.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    store.update_user(&id, &off, t, AdminGuard::KeepLastAdmin).await.unwrap().map(|_| ())
                } else {
                    store.delete_user(&id, AdminGuard::KeepLastAdmin).await.unwrap().map(|_| ())
                }
            })
        });
        let mut refused = 0;
        for removal in removals.collect::<Vec<_>>() {
            if removal.await.unwrap().is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 1);
        let (users, _) = store.list_users(0, 100).await.unwrap();
        assert_eq!(users.iter().filter(|u| u.is_active_admin()).count(), 1);
    }

    async fn update_user_patches_only_what_it_names(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let later = alice.created_at + Delta::minutes(5);
        let patch = UserPatch {
            name: Some("Alice A.".into()),
            roles: Some(vec!["admin".into(), "user".into()]),
            permissions: Some(vec!["manage-users".into()]),
            active: Some(false),
            require_password_change: Some(true),
            password_bcrypt: Some(PasswordHash("$2b$10$new".into())),
            ..UserPatch::default()
        };
        let updated = store.update_user(&alice.id, &patch, later, AdminGuard::Off).await.unwrap().unwrap().unwrap();
        let expected = User {
            name: Some("Alice A.".into()),
            roles: vec!["admin".into(), "user".into()],
            permissions: vec!["manage-users".into()],
            active: false,
            require_password_change: true,
            password_bcrypt: Some(PasswordHash("$2b$10$new".into())),
            updated_at: later,
            ..alice.clone()
        };
        assert_eq!(updated, expected);
        assert_eq!(reload(&store, &alice.id).await, expected);
        let back = UserPatch {
            permissions: Some(Vec::new()),
            require_password_change: Some(false),
            emails: Some(Vec::new()),
            ..UserPatch::default()
        };
        let updated = store.update_user(&alice.id, &back, later, AdminGuard::Off).await.unwrap().unwrap().unwrap();
        assert!(updated.permissions.is_empty() && !updated.require_password_change && updated.emails.is_empty());
        assert_eq!(store.update_user("no-such-user", &patch, later, AdminGuard::Off).await.unwrap(), Ok(None));
    }

    async fn update_user_keeps_names_unique(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let bob = inserted(&store, "bob").await;
        let t = now();
        let to_name = |n: &str| UserPatch { username: Some(n.into()), ..UserPatch::default() };
        let to_email = |e: &str| UserPatch {
            emails: Some(vec![Email { address: e.into(), verified: false }]),
            ..UserPatch::default()
        };
        assert!(matches!(store.update_user(&bob.id, &to_name("ALICE"), t, AdminGuard::Off).await, Err(StoreError::Duplicate(UniqueField::Username))));
        assert!(matches!(store.update_user(&bob.id, &to_email("Alice@example.com"), t, AdminGuard::Off).await, Err(StoreError::Duplicate(UniqueField::Email))));
        assert_eq!(reload(&store, &bob.id).await, bob);
        // Changing the case of one's own name is fine.
        let renamed = store.update_user(&bob.id, &to_name("Bob"), t, AdminGuard::Off).await.unwrap().unwrap().unwrap();
        assert_eq!(renamed.username.as_deref(), Some("Bob"));
        // A rename frees the old name and email for others.
        store.update_user(&alice.id, &to_name("alicia"), t, AdminGuard::Off).await.unwrap().unwrap().unwrap();
        store.update_user(&alice.id, &to_email("alicia@example.com"), t, AdminGuard::Off).await.unwrap().unwrap().unwrap();
        let new_alice = inserted(&store, "alice").await;
        assert_eq!(store.find_user(&UserKey::Username("alice".into())).await.unwrap(), Some(new_alice));
        assert!(matches!(store.update_user(&bob.id, &to_name("alicia"), t, AdminGuard::Off).await, Err(StoreError::Duplicate(UniqueField::Username))));
    }

    async fn clearing_login_tokens_removes_tokens_and_pats(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let key = UserKey::Id(alice.id.clone());
        store.push_login_token(&key, &resume(now(), "h1"), 50).await.unwrap();
        store.add_personal_access_token(&alice.id, &pat("ci", "h2"), 50).await.unwrap();
        let patch = UserPatch { clear_login_tokens: true, ..UserPatch::default() };
        let t = now() + Delta::seconds(1);
        let updated = store.update_user(&alice.id, &patch, t, AdminGuard::Off).await.unwrap().unwrap().unwrap();
        assert_eq!(updated, User { updated_at: t, ..alice.clone() });
        assert!(tokens(&store, &alice.id).await.is_empty());
        assert_eq!(owner_of(&store, None, "h1").await, None);
        assert_eq!(owner_of(&store, None, "h2").await, None);
    }

    async fn remove_login_tokens_keeps_the_given_one_and_pats(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let bob = inserted(&store, "bob").await;
        let base = now();
        for (i, hash) in ["a1", "a2", "a3"].into_iter().enumerate() {
            let at = base + Delta::milliseconds(i as i64);
            store.push_login_token(&UserKey::Id(alice.id.clone()), &resume(at, hash), 50).await.unwrap();
        }
        store.push_login_token(&UserKey::Id(bob.id.clone()), &resume(base, "b1"), 50).await.unwrap();
        store.add_personal_access_token(&alice.id, &pat("ci", "a-pat"), 50).await.unwrap();
        assert_eq!(store.remove_login_tokens(&alice.id, Some(&h("a2"))).await.unwrap(), 2);
        assert_eq!(resume_hashes(&store, &alice.id).await, ["a2".to_string()].into());
        assert_eq!(pat_names(&store, &alice.id).await, ["ci".to_string()].into());
        assert_eq!(owner_of(&store, None, "a1").await, None);
        assert!(owner_of(&store, None, "a-pat").await.is_some());
        // Without `keep`, every login token goes; PATs and other users' tokens stay.
        assert_eq!(store.remove_login_tokens(&alice.id, None).await.unwrap(), 1);
        assert_eq!(store.remove_login_tokens(&alice.id, None).await.unwrap(), 0);
        assert!(resume_hashes(&store, &alice.id).await.is_empty());
        assert_eq!(pat_names(&store, &alice.id).await, ["ci".to_string()].into());
        assert_eq!(resume_hashes(&store, &bob.id).await, ["b1".to_string()].into());
        // `keep` naming a PAT or another user's token changes nothing about them.
        assert_eq!(store.remove_login_tokens(&bob.id, Some(&h("a-pat"))).await.unwrap(), 1);
        assert_eq!(pat_names(&store, &alice.id).await, ["ci".to_string()].into());
        assert_eq!(store.remove_login_tokens("nobody", None).await.unwrap(), 0);
    }

    async fn find_personal_access_token_reads_the_named_one(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let bob = inserted(&store, "bob").await;
        store.push_login_token(&UserKey::Id(alice.id.clone()), &resume(now(), "a1"), 50).await.unwrap();
        let ci = PersonalAccessToken { bypass_two_factor: true, ..pat("ci", "a-ci") };
        store.add_personal_access_token(&alice.id, &ci, 50).await.unwrap();
        store.add_personal_access_token(&alice.id, &pat("deploy", "a-deploy"), 50).await.unwrap();
        store.add_personal_access_token(&bob.id, &pat("bobs", "b-pat"), 50).await.unwrap();
        assert_eq!(store.find_personal_access_token(&alice.id, "ci").await.unwrap(), Some(ci));
        let deploy = store.find_personal_access_token(&alice.id, "deploy").await.unwrap().unwrap();
        assert_eq!(deploy.hashed_token, h("a-deploy"));
        // Names are exact and per user.
        assert_eq!(store.find_personal_access_token(&alice.id, "CI").await.unwrap(), None);
        assert_eq!(store.find_personal_access_token(&alice.id, "bobs").await.unwrap(), None);
        assert_eq!(store.find_personal_access_token(&bob.id, "ci").await.unwrap(), None);
        assert_eq!(store.find_personal_access_token("nobody", "ci").await.unwrap(), None);
        // After a replace, the new one.
        let fresh = pat("ci", "a-ci-2");
        assert!(store.replace_personal_access_token(&alice.id, &fresh).await.unwrap());
        assert_eq!(store.find_personal_access_token(&alice.id, "ci").await.unwrap(), Some(fresh));
    }

    async fn delete_user_frees_its_names(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        assert!(store.delete_user(&alice.id, AdminGuard::Off).await.unwrap().unwrap());
        assert!(!store.delete_user(&alice.id, AdminGuard::Off).await.unwrap().unwrap());
        assert_eq!(store.find_user(&UserKey::Id(alice.id.clone())).await.unwrap(), None);
        assert_eq!(store.count_users().await.unwrap(), 0);
        inserted(&store, "ALICE").await;
    }

    async fn delete_user_takes_its_tokens_along(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let bob = inserted(&store, "bob").await;
        store.push_login_token(&UserKey::Id(alice.id.clone()), &resume(now(), "a1"), 50).await.unwrap();
        store.add_personal_access_token(&alice.id, &pat("ci", "a-pat"), 50).await.unwrap();
        store.push_login_token(&UserKey::Id(bob.id.clone()), &resume(now(), "b1"), 50).await.unwrap();
        assert!(store.delete_user(&alice.id, AdminGuard::Off).await.unwrap().unwrap());
        assert_eq!(owner_of(&store, None, "a1").await, None);
        assert_eq!(owner_of(&store, None, "a-pat").await, None);
        assert!(tokens(&store, &alice.id).await.is_empty());
        assert_eq!(owner_of(&store, None, "b1").await.map(|(id, _)| id), Some(bob.id));
    }

    async fn login_token_cap_keeps_the_newest_and_never_pats(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        store.add_personal_access_token(&alice.id, &pat("first", "p1"), 50).await.unwrap();
        let base = now();
        let key = UserKey::Username("ALICE".into());
        for i in 0..8 {
            let id = store.push_login_token(&key, &resume(base + Delta::milliseconds(i), &format!("r{i}")), 5).await.unwrap();
            assert_eq!(id.as_deref(), Some(alice.id.as_str()));
        }
        store.add_personal_access_token(&alice.id, &pat("second", "p2"), 50).await.unwrap();
        // An older token pushed late is itself the one to go.
        store.push_login_token(&key, &resume(base - Delta::days(1), "old"), 5).await.unwrap();
        assert_eq!(resume_hashes(&store, &alice.id).await, ["r3", "r4", "r5", "r6", "r7"].map(String::from).into());
        assert_eq!(pat_names(&store, &alice.id).await, ["first", "second"].map(String::from).into());
        assert_eq!(owner_of(&store, None, "r2").await, None);
        assert_eq!(store.push_login_token(&UserKey::Id("nobody".into()), &resume(base, "x"), 5).await.unwrap(), None);
        assert_eq!(store.push_login_token(&UserKey::Username("nobody".into()), &resume(base, "x"), 5).await.unwrap(), None);
        assert_eq!(owner_of(&store, None, "x").await, None);
    }

    /// Two instances can stamp one user's tokens in the same millisecond:
    /// the cap still keeps exactly `max` (ties broken by hash, alike in
    /// every store and every pusher).
    async fn login_token_cap_is_exact_when_whens_tie(kind) {
        let store = open(&kind).await;
        let tim = inserted(&store, "tim").await;
        let key = UserKey::Id(tim.id.clone());
        let t = now();
        store.push_login_token(&key, &resume(t - Delta::seconds(1), "older"), 3).await.unwrap();
        for hash in ["t-c", "t-a", "t-e", "t-b", "t-d"] {
            store.push_login_token(&key, &resume(t, hash), 3).await.unwrap();
        }
        assert_eq!(resume_hashes(&store, &tim.id).await, ["t-c", "t-d", "t-e"].map(String::from).into());
    }

    async fn remove_login_token_removes_exactly_one(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let key = UserKey::Id(alice.id.clone());
        store.push_login_token(&key, &resume(now(), "h1"), 50).await.unwrap();
        store.push_login_token(&key, &resume(now() + Delta::milliseconds(1), "h2"), 50).await.unwrap();
        store.add_personal_access_token(&alice.id, &pat("ci", "p1"), 50).await.unwrap();
        assert!(store.remove_login_token(&alice.id, &h("h1")).await.unwrap());
        assert!(!store.remove_login_token(&alice.id, &h("h1")).await.unwrap());
        assert!(!store.remove_login_token("nobody", &h("h2")).await.unwrap());
        assert!(store.remove_login_token(&alice.id, &h("p1")).await.unwrap());
        assert_eq!(resume_hashes(&store, &alice.id).await, ["h2".to_string()].into());
        assert!(pat_names(&store, &alice.id).await.is_empty());
    }

    async fn personal_access_tokens_add_replace_remove(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        assert_eq!(store.add_personal_access_token(&alice.id, &pat("ci", "p1"), 50).await.unwrap(), PatInsert::Inserted);
        assert_eq!(store.add_personal_access_token(&alice.id, &pat("ci", "p2"), 50).await.unwrap(), PatInsert::NameTaken);
        assert_eq!(store.add_personal_access_token(&alice.id, &pat("other", "p3"), 50).await.unwrap(), PatInsert::Inserted);
        assert_eq!(store.add_personal_access_token("nobody", &pat("ci", "p4"), 50).await.unwrap(), PatInsert::NoSuchUser);
        let mut renewed = pat("ci", "p5");
        renewed.bypass_two_factor = true;
        assert!(store.replace_personal_access_token(&alice.id, &renewed).await.unwrap());
        assert!(!store.replace_personal_access_token(&alice.id, &pat("missing", "p6")).await.unwrap());
        let held = pats(&tokens(&store, &alice.id).await);
        assert_eq!(held.iter().find(|p| p.name == "ci"), Some(&renewed));
        assert_eq!(held.len(), 2);
        assert_eq!(owner_of(&store, None, "p1").await, None);
        assert_eq!(
            owner_of(&store, Some(&alice.id), "p5").await,
            Some((alice.id.clone(), LoginToken::Personal(renewed.clone())))
        );
        assert!(store.remove_personal_access_token(&alice.id, "ci").await.unwrap());
        assert!(!store.remove_personal_access_token(&alice.id, "ci").await.unwrap());
        assert_eq!(owner_of(&store, None, "p5").await, None);
        assert_eq!(pat_names(&store, &alice.id).await, ["other".to_string()].into());
        // The name is free again.
        assert_eq!(store.add_personal_access_token(&alice.id, &pat("ci", "p7"), 50).await.unwrap(), PatInsert::Inserted);
    }

    async fn api_tokens_are_replaced_and_deleted(kind) {
        let store = open(&kind).await;
        let t = now();
        let first = ApiToken { user_id: "u1".into(), hashed_token: h("a1"), created_at: t, hint: "wxyz".into(), last_used_at: None };
        store.set_api_token(&first).await.unwrap();
        assert_eq!(store.api_token_of("u1").await.unwrap(), Some(first.clone()));
        assert_eq!(store.find_api_token(&h("a1")).await.unwrap(), Some(first));
        let second = ApiToken { user_id: "u1".into(), hashed_token: h("a2"), created_at: t + Delta::seconds(1), hint: "abcd".into(), last_used_at: None };
        store.set_api_token(&second).await.unwrap();
        assert_eq!(store.find_api_token(&h("a1")).await.unwrap(), None);
        assert_eq!(store.find_api_token(&h("a2")).await.unwrap(), Some(second.clone()));
        assert_eq!(store.api_token_of("u1").await.unwrap(), Some(second.clone()));
        assert_eq!(store.api_token_of("u2").await.unwrap(), None);
        let third = ApiToken { user_id: "u3".into(), hashed_token: h("a3"), created_at: t, hint: "efgh".into(), last_used_at: None };
        store.set_api_token(&third).await.unwrap();
        let mut batch = store.api_tokens_of(&["u1".into(), "u2".into(), "u3".into()]).await.unwrap();
        batch.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        assert_eq!(batch, vec![second.clone(), third]);
        assert_eq!(store.api_tokens_of(&[]).await.unwrap(), vec![]);
        assert!(store.delete_api_token("u1").await.unwrap());
        assert!(!store.delete_api_token("u1").await.unwrap());
        assert_eq!(store.find_api_token(&h("a2")).await.unwrap(), None);
    }

    async fn pat_expiry_and_last_use_round_trip(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let t = now();
        let mut p = pat("ci", "p1");
        p.expires_at = Some(t + Delta::days(3));
        assert_eq!(store.add_personal_access_token(&alice.id, &p, 50).await.unwrap(), PatInsert::Inserted);
        let found = store.find_by_token(Some(&alice.id), &h("p1")).await.unwrap().unwrap().1;
        assert_eq!(found, LoginToken::Personal(p.clone()));
        // First use writes; a second within the window does not; after it, it does.
        assert!(store.touch_personal_access_token(&alice.id, &h("p1"), t, t - Delta::seconds(60)).await.unwrap());
        let t2 = t + Delta::seconds(10);
        assert!(!store.touch_personal_access_token(&alice.id, &h("p1"), t2, t2 - Delta::seconds(60)).await.unwrap());
        assert_eq!(store.find_personal_access_token(&alice.id, "ci").await.unwrap().unwrap().last_used_at, Some(t));
        let t3 = t + Delta::seconds(61);
        assert!(store.touch_personal_access_token(&alice.id, &h("p1"), t3, t3 - Delta::seconds(60)).await.unwrap());
        let stored = store.find_personal_access_token(&alice.id, "ci").await.unwrap().unwrap();
        assert_eq!((stored.last_used_at, stored.expires_at), (Some(t3), p.expires_at));
        // Only that user's PAT, never a login token.
        store.push_login_token(&UserKey::Id(alice.id.clone()), &resume(t, "r1"), 10).await.unwrap();
        assert!(!store.touch_personal_access_token(&alice.id, &h("r1"), t3, t3).await.unwrap());
        assert!(!store.touch_personal_access_token("someone-else", &h("p1"), t3 + Delta::days(1), t3 + Delta::days(1)).await.unwrap());
        // Replacing keeps what the new entry says.
        let mut fresh = pat("ci", "p2");
        fresh.expires_at = None;
        assert!(store.replace_personal_access_token(&alice.id, &fresh).await.unwrap());
        assert_eq!(store.find_personal_access_token(&alice.id, "ci").await.unwrap(), Some(fresh));
    }

    async fn api_token_last_use_is_conditional_and_reset(kind) {
        let store = open(&kind).await;
        let t = now();
        let token = ApiToken { user_id: "u1".into(), hashed_token: h("a1"), created_at: t, hint: "wxyz".into(), last_used_at: None };
        store.set_api_token(&token).await.unwrap();
        assert!(store.touch_api_token(&h("a1"), t, t - Delta::seconds(60)).await.unwrap());
        assert!(!store.touch_api_token(&h("a1"), t + Delta::seconds(5), t - Delta::seconds(55)).await.unwrap());
        assert_eq!(store.api_token_of("u1").await.unwrap().unwrap().last_used_at, Some(t));
        assert!(!store.touch_api_token(&h("nope"), t, t).await.unwrap());
        let next = ApiToken { hashed_token: h("a2"), ..token };
        store.set_api_token(&next).await.unwrap();
        assert_eq!(store.api_token_of("u1").await.unwrap(), Some(next));
    }

    async fn audit_events_are_kept_filtered_paged_and_pruned(kind) {
        let store = open(&kind).await;
        let t = now();
        let event = |i: i64, kind: AuditKind, actor: Option<&str>, target: &str| AuditEvent {
            id: format!("event-{i:02}"),
            at: t + Delta::seconds(i),
            expires_at: t + Delta::days(1) + Delta::seconds(i),
            kind,
            actor: actor.map(str::to_string),
            target: Some(target.into()),
            route: Some("users.createToken".into()),
            address: Some("203.0.113.7".into()),
            request_id: Some(format!("req-{i}")),
            outcome: kind.outcome().into(),
            detail: None,
        };
        let all = [
            event(0, AuditKind::LoginFailed, None, "bob"),
            event(1, AuditKind::TokenMinted, Some("admin"), "bob"),
            event(2, AuditKind::PatCreated, Some("carol"), "carol"),
            event(3, AuditKind::TokenMinted, Some("bob"), "carol"),
        ];
        for e in &all {
            store.record_audit_event(e).await.unwrap();
        }
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery { count: 10, ..AuditQuery::default() };
            f(&mut q);
            q
        };
        let (events, total) = store.audit_events(&q(|_| {})).await.unwrap();
        assert_eq!(total, 4);
        assert_eq!(events, all.iter().rev().cloned().collect::<Vec<_>>());
        let ids = |events: Vec<AuditEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let (events, total) = store.audit_events(&q(|q| q.user = Some("bob".into()))).await.unwrap();
        assert_eq!((ids(events), total), (vec!["event-03".to_string(), "event-01".into(), "event-00".into()], 3));
        let (events, _) = store.audit_events(&q(|q| q.kind = Some(AuditKind::TokenMinted))).await.unwrap();
        assert_eq!(ids(events), ["event-03", "event-01"]);
        let mut ranged = q(|_| {});
        ranged.since = Some(t + Delta::seconds(1));
        ranged.until = Some(t + Delta::seconds(3));
        assert_eq!(ids(store.audit_events(&ranged).await.unwrap().0), ["event-02", "event-01"]);
        let (events, total) = store.audit_events(&q(|q| { q.offset = 1; q.count = 2; })).await.unwrap();
        assert_eq!((ids(events), total), (vec!["event-02".to_string(), "event-01".into()], 4));
        // Pruning removes exactly the events past their end.
        assert_eq!(store.prune_audit_events(t + Delta::days(1) + Delta::seconds(1)).await.unwrap(), 2);
        assert_eq!(ids(store.audit_events(&q(|_| {})).await.unwrap().0), ["event-03", "event-02"]);
    }

    async fn a_login_token_and_its_audit_event_are_written_together(kind) {
        let store = open(&kind).await;
        let u = inserted(&store, "minted").await;
        let t = now();
        let event = |id: &str| AuditEvent {
            id: id.into(),
            at: t,
            expires_at: t + Delta::days(1),
            kind: AuditKind::TokenMinted,
            actor: Some("admin".into()),
            target: Some(u.id.clone()),
            route: Some("users.createToken".into()),
            address: None,
            request_id: None,
            outcome: AuditKind::TokenMinted.outcome().into(),
            detail: None,
        };
        // Below and at the cap: the token is kept (the oldest goes at the
        // cap), and each event is recorded with its token.
        for i in 0..3 {
            let (owner, recorded) = store
                .push_login_token_audited(
                    &UserKey::Id(u.id.clone()),
                    &resume(t + Delta::milliseconds(i), &format!("audited-{i}")),
                    2,
                    &event(&format!("mint-{i}")),
                )
                .await
                .unwrap();
            assert_eq!(owner.as_deref(), Some(u.id.as_str()));
            recorded.unwrap();
        }
        assert_eq!(
            resume_hashes(&store, &u.id).await,
            ["audited-1", "audited-2"].map(String::from).into()
        );
        assert_eq!(
            owner_of(&store, Some(&u.id), "audited-2").await.map(|(id, _)| id),
            Some(u.id.clone())
        );
        // No such user: no token, and no event either.
        let (owner, recorded) = store
            .push_login_token_audited(
                &UserKey::Id("nobody".into()),
                &resume(t, "orphan"),
                2,
                &event("mint-orphan"),
            )
            .await
            .unwrap();
        assert_eq!(owner, None);
        recorded.unwrap();
        let q = AuditQuery { count: 10, ..AuditQuery::default() };
        let (events, total) = store.audit_events(&q).await.unwrap();
        assert_eq!(total, 3);
        let mut ids: Vec<String> = events.into_iter().map(|e| e.id).collect();
        ids.sort();
        assert_eq!(ids, ["mint-0", "mint-1", "mint-2"]);
    }

    async fn sessions_are_touched_until_they_expire(kind) {
        let store = open(&kind).await;
        let t0 = now();
        let s = session("u1", t0);
        store.insert_session(&s, 100).await.unwrap();
        assert!(matches!(store.insert_session(&s, 100).await, Err(StoreError::Duplicate(UniqueField::Other))));
        let t1 = t0 + Delta::minutes(50);
        let touched = store.touch_session(&s.hashed_id, t1, t1 + Delta::hours(1)).await.unwrap().unwrap();
        assert_eq!(touched, Session { last_seen_at: t1, expires_at: t1 + Delta::hours(1), ..s.clone() });
        // Idle too long.
        let t2 = t1 + Delta::hours(1);
        assert_eq!(store.touch_session(&s.hashed_id, t2, t2 + Delta::hours(1)).await.unwrap(), None);
        assert_eq!(store.touch_session(&h("unknown"), t0, t1).await.unwrap(), None);
        // Used all the time, but past its absolute end.
        let busy = session("u1", t0);
        store.insert_session(&busy, 100).await.unwrap();
        let mut t = t0;
        while t + Delta::minutes(30) < busy.absolute_expires_at {
            t += Delta::minutes(30);
            assert!(store.touch_session(&busy.hashed_id, t, t + Delta::hours(1)).await.unwrap().is_some());
        }
        let end = busy.absolute_expires_at;
        assert_eq!(store.touch_session(&busy.hashed_id, end, end + Delta::hours(1)).await.unwrap(), None);
    }

    async fn sessions_are_deleted_one_or_all(kind) {
        let store = open(&kind).await;
        let t0 = now();
        let (a, b, c) = (session("u1", t0), session("u1", t0), session("u2", t0));
        for s in [&a, &b, &c] {
            store.insert_session(s, 100).await.unwrap();
        }
        assert!(store.delete_session(&a.hashed_id).await.unwrap());
        assert!(!store.delete_session(&a.hashed_id).await.unwrap());
        assert_eq!(store.delete_sessions_of("u1", None).await.unwrap(), 1);
        assert_eq!(store.delete_sessions_of("u1", None).await.unwrap(), 0);
        assert_eq!(store.touch_session(&b.hashed_id, t0, t0 + Delta::hours(1)).await.unwrap(), None);
        assert!(store.touch_session(&c.hashed_id, t0, t0 + Delta::hours(1)).await.unwrap().is_some());
    }

    async fn delete_sessions_of_keeps_the_given_one(kind) {
        let store = open(&kind).await;
        let t0 = now();
        let (a, b, c, other) = (session("u1", t0), session("u1", t0), session("u1", t0), session("u2", t0));
        for s in [&a, &b, &c, &other] {
            store.insert_session(s, 100).await.unwrap();
        }
        assert_eq!(store.delete_sessions_of("u1", Some(&b.hashed_id)).await.unwrap(), 2);
        let live = |s: &Session| {
            let store = store.clone();
            let id = s.hashed_id.clone();
            async move { store.touch_session(&id, t0, t0 + Delta::hours(1)).await.unwrap().is_some() }
        };
        assert!(!live(&a).await && live(&b).await && !live(&c).await && live(&other).await);
        // `keep` naming another user's session protects nothing of this user's.
        assert_eq!(store.delete_sessions_of("u1", Some(&other.hashed_id)).await.unwrap(), 1);
        assert!(!live(&b).await && live(&other).await);
    }

    async fn concurrent_pushes_keep_exactly_the_newest(kind) {
        const PUSHES: i64 = 200;
        const CAP: usize = 50;
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        store.add_personal_access_token(&alice.id, &pat("keep", "pat"), 50).await.unwrap();
        let base = now();
        let tasks: Vec<_> = (0..PUSHES)
            .map(|n| {
                // Interleave old and new tokens.
                let i = (n * 73) % PUSHES;
                let store = store.clone();
                let key = UserKey::Id(alice.id.clone());
                tokio::spawn(async move {
                    store.push_login_token(&key, &resume(base + Delta::milliseconds(i), &format!("t{i}")), CAP).await
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().unwrap().is_some());
        }
        let newest: BTreeSet<String> = (PUSHES - CAP as i64..PUSHES).map(|i| format!("t{i}")).collect();
        assert_eq!(resume_hashes(&store, &alice.id).await, newest);
        assert_eq!(pat_names(&store, &alice.id).await, ["keep".to_string()].into());
    }

    async fn insert_session_keeps_the_newest_max(kind) {
        let store = open(&kind).await;
        let t0 = now();
        let other = session("u2", t0);
        store.insert_session(&other, 2).await.unwrap();
        let mine: Vec<Session> = (0..5).map(|i| session("u1", t0 + Delta::seconds(i))).collect();
        // Inserted newest first for some: the cap goes by `created_at`, not insertion order.
        for i in [1, 0, 3, 2, 4] {
            store.insert_session(&mine[i], 3).await.unwrap();
        }
        let mut live = Vec::new();
        for s in &mine {
            live.push(store.touch_session(&s.hashed_id, t0, t0 + Delta::hours(1)).await.unwrap().is_some());
        }
        assert_eq!(live, [false, false, true, true, true]);
        assert!(store.touch_session(&other.hashed_id, t0, t0 + Delta::hours(1)).await.unwrap().is_some());
    }

    async fn concurrent_session_inserts_end_at_the_max(kind) {
        let store = open(&kind).await;
        let t0 = now();
        let all: Vec<Session> = (0..30).map(|i| session("u1", t0 + Delta::milliseconds(i))).collect();
        let tasks: Vec<_> = all
            .iter()
            .cloned()
            .map(|s| {
                let store = store.clone();
                tokio::spawn(async move { store.insert_session(&s, 4).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let mut live = Vec::new();
        for (i, s) in all.iter().enumerate() {
            if store.touch_session(&s.hashed_id, t0, t0 + Delta::hours(1)).await.unwrap().is_some() {
                live.push(i);
            }
        }
        assert_eq!(live, [26, 27, 28, 29]);
    }

    async fn pat_adds_stop_at_the_max(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        for i in 0..3 {
            assert_eq!(store.add_personal_access_token(&alice.id, &pat(&format!("n{i}"), &format!("p{i}")), 3).await.unwrap(), PatInsert::Inserted);
        }
        assert_eq!(store.add_personal_access_token(&alice.id, &pat("n3", "p3"), 3).await.unwrap(), PatInsert::TooMany);
        // A taken name is still reported as such.
        assert_eq!(store.add_personal_access_token(&alice.id, &pat("n0", "p4"), 3).await.unwrap(), PatInsert::NameTaken);
        // Login tokens do not count.
        store.push_login_token(&UserKey::Id(alice.id.clone()), &resume(now(), "r1"), 50).await.unwrap();
        assert_eq!(pat_names(&store, &alice.id).await.len(), 3);
        assert!(store.remove_personal_access_token(&alice.id, "n1").await.unwrap());
        assert_eq!(store.add_personal_access_token(&alice.id, &pat("n3", "p3"), 3).await.unwrap(), PatInsert::Inserted);
        assert_eq!(store.add_personal_access_token("nobody", &pat("x", "p9"), 3).await.unwrap(), PatInsert::NoSuchUser);
    }

    async fn concurrent_pat_adds_stop_at_the_max(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                let id = alice.id.clone();
                tokio::spawn(async move { store.add_personal_access_token(&id, &pat(&format!("n{i}"), &format!("p{i}")), 5).await })
            })
            .collect();
        let mut inserted_count = 0;
        for task in tasks {
            match task.await.unwrap().unwrap() {
                PatInsert::Inserted => inserted_count += 1,
                PatInsert::TooMany => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(inserted_count, 5);
        assert_eq!(pat_names(&store, &alice.id).await.len(), 5);
    }

    async fn concurrent_pat_adds_with_one_name_have_one_winner(kind) {
        let store = open(&kind).await;
        let alice = inserted(&store, "alice").await;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                let id = alice.id.clone();
                tokio::spawn(async move { store.add_personal_access_token(&id, &pat("ci", &format!("p{i}")), 50).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap().unwrap());
        }
        assert_eq!(outcomes.iter().filter(|o| **o == PatInsert::Inserted).count(), 1);
        assert_eq!(outcomes.iter().filter(|o| **o == PatInsert::NameTaken).count(), 19);
        assert_eq!(pats(&tokens(&store, &alice.id).await).len(), 1);
    }

    async fn concurrent_inserts_of_one_name_in_two_cases_have_one_winner(kind) {
        let store = open(&kind).await;
        for round in 0..5 {
            let lower = user(&format!("racer{round}"));
            let mut upper = user(&format!("RACER{round}"));
            upper.emails[0].address = format!("other{round}@example.com");
            let (a, b) = {
                let (s1, s2) = (store.clone(), store.clone());
                let (l, u) = (lower.clone(), upper.clone());
                tokio::join!(
                    tokio::spawn(async move { s1.insert_user(&l).await }),
                    tokio::spawn(async move { s2.insert_user(&u).await })
                )
            };
            let results = [a.unwrap(), b.unwrap()];
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {results:?}");
            assert!(results.iter().any(|r| matches!(r, Err(StoreError::Duplicate(UniqueField::Username)))), "{results:?}");
            let found = store.find_user(&UserKey::Username(format!("Racer{round}"))).await.unwrap().unwrap();
            assert!(found.id == lower.id || found.id == upper.id);
        }
        assert_eq!(store.count_users().await.unwrap(), 5);
    }

    async fn concurrent_inserts_of_one_email_have_one_winner(kind) {
        let store = open(&kind).await;
        for round in 0..5 {
            let mut first = user(&format!("first{round}"));
            first.emails[0].address = format!("Shared{round}@example.com");
            let mut second = user(&format!("second{round}"));
            second.emails[0].address = format!("shared{round}@EXAMPLE.com");
            let (s1, s2) = (store.clone(), store.clone());
            let (a, b) = tokio::join!(
                tokio::spawn(async move { s1.insert_user(&first).await }),
                tokio::spawn(async move { s2.insert_user(&second).await })
            );
            let results = [a.unwrap(), b.unwrap()];
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "round {round}: {results:?}");
            assert!(results.iter().any(|r| matches!(r, Err(StoreError::Duplicate(UniqueField::Email)))), "{results:?}");
        }
        assert_eq!(store.count_users().await.unwrap(), 5);
    }

    async fn login_attempts_are_counted_per_account_and_address(kind) {
        let store = open(&kind).await;
        let t0 = now();
        let limits = limits_at(t0, 3, 5);
        // Three failures of one account (by id, or by its username alone, as
        // Rocket.Chat records unknown-id attempts), each from its own address.
        for (i, id) in [Some("u1"), None, Some("u1")].into_iter().enumerate() {
            let a = attempt(id, Some("dave"), Some(&format!("10.0.0.{i}")), t0 + Delta::milliseconds(i as i64));
            assert_eq!(store.reserve_login_attempt(&a, &limits).await.unwrap(), None, "attempt {i}");
        }
        let fourth = attempt(Some("u1"), Some("dave"), Some("10.0.1.1"), t0 + Delta::milliseconds(5));
        assert_eq!(store.reserve_login_attempt(&fourth, &limits).await.unwrap(), Some(BlockScope::ForUser));
        // Another account is not blocked; refused attempts were not recorded,
        // so the address 10.0.1.1 has no failure yet.
        for i in 0..5 {
            let a = attempt(None, Some(&format!("ghost{i}")), Some("10.0.1.1"), t0 + Delta::milliseconds(10 + i));
            assert_eq!(store.reserve_login_attempt(&a, &limits).await.unwrap(), None, "ghost{i}");
        }
        let sixth = attempt(None, Some("someone"), Some("10.0.1.1"), t0 + Delta::milliseconds(20));
        assert_eq!(store.reserve_login_attempt(&sixth, &limits).await.unwrap(), Some(BlockScope::ForIp));
        // The account is checked first.
        let both = attempt(Some("u1"), Some("dave"), Some("10.0.1.1"), t0 + Delta::milliseconds(21));
        assert_eq!(store.reserve_login_attempt(&both, &limits).await.unwrap(), Some(BlockScope::ForUser));
        // Failures at or before `since` no longer count.
        let later = limits_at(t0 + Delta::milliseconds(20), 3, 5);
        let later = AttemptLimits { user_since: t0 + Delta::milliseconds(2), ip_since: t0 + Delta::milliseconds(14), ..later };
        let a = attempt(Some("u1"), Some("dave"), Some("10.0.1.1"), t0 + Delta::milliseconds(30));
        assert_eq!(store.reserve_login_attempt(&a, &later).await.unwrap(), None);
    }

    async fn a_success_ends_the_account_count_not_the_address(kind) {
        let store = open(&kind).await;
        let t0 = now();
        let limits = limits_at(t0, 3, 3);
        let ip = Some("192.0.2.1");
        for i in 0..2 {
            let a = attempt(Some("victim"), Some("victim"), ip, t0 + Delta::milliseconds(i));
            assert_eq!(store.reserve_login_attempt(&a, &limits).await.unwrap(), None);
        }
        let own = attempt(Some("me"), Some("me"), None, t0 + Delta::milliseconds(2));
        let mine = [own.clone(), attempt(Some("me"), Some("me"), None, t0 + Delta::milliseconds(3))];
        for a in &mine {
            assert_eq!(store.reserve_login_attempt(a, &limits).await.unwrap(), None);
        }
        store.login_attempt_succeeded(&mine[1].id, t0 + Delta::milliseconds(4)).await.unwrap();
        // The account starts afresh: three more failures before its block.
        for i in 0..3 {
            let a = attempt(Some("me"), Some("me"), None, t0 + Delta::milliseconds(5 + i));
            assert_eq!(store.reserve_login_attempt(&a, &limits).await.unwrap(), None, "after the success, {i}");
        }
        let a = attempt(Some("me"), Some("me"), None, t0 + Delta::milliseconds(9));
        assert_eq!(store.reserve_login_attempt(&a, &limits).await.unwrap(), Some(BlockScope::ForUser));
        // A success from the address does not clear the address's count.
        let a = attempt(Some("mallory"), Some("mallory"), ip, t0 + Delta::milliseconds(10));
        assert_eq!(store.reserve_login_attempt(&a, &limits).await.unwrap(), None);
        store.login_attempt_succeeded(&a.id, t0 + Delta::milliseconds(11)).await.unwrap();
        let a = attempt(Some("victim"), Some("victim"), ip, t0 + Delta::milliseconds(12));
        assert_eq!(store.reserve_login_attempt(&a, &limits).await.unwrap(), None);
        let a = attempt(Some("mallory"), Some("mallory"), ip, t0 + Delta::milliseconds(13));
        assert_eq!(store.reserve_login_attempt(&a, &limits).await.unwrap(), Some(BlockScope::ForIp));
    }

    async fn withdrawn_login_attempts_count_for_nothing(kind) {
        let store = open(&kind).await;
        let t0 = now();
        let limits = limits_at(t0, 2, 100);
        for i in 0..10 {
            let a = attempt(Some("u"), Some("u"), None, t0 + Delta::milliseconds(i));
            assert_eq!(store.reserve_login_attempt(&a, &limits).await.unwrap(), None, "{i}");
            store.withdraw_login_attempt(&a.id).await.unwrap();
        }
    }

    /// The check-and-reserve is atomic: of many concurrent attempts for one
    /// account, at most the limit are admitted (each one counted). On
    /// MongoDB concurrent attempts may also refuse one another (each counts
    /// the others' records before they withdraw them); never too many pass.
    async fn concurrent_login_reservations_admit_at_most_the_limit(kind) {
        let store = open(&kind).await;
        let t0 = now();
        let limits = limits_at(t0, 5, 1000);
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let a = attempt(Some("target"), Some("target"), Some("198.51.100.7"), t0 + Delta::milliseconds(i));
                    store.reserve_login_attempt(&a, &limits).await.unwrap()
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            if t.await.unwrap().is_none() {
                admitted += 1;
            }
        }
        assert!(admitted <= 5, "{admitted} admitted");
        if matches!(kind, StoreKind::Sqlite) {
            assert_eq!(admitted, 5, "one writer: exact");
        }
        // Whatever was admitted stays counted: at most 5 - admitted more.
        let mut more = 0;
        for i in 0..10 {
            let a = attempt(Some("target"), Some("target"), None, t0 + Delta::milliseconds(100 + i));
            if store.reserve_login_attempt(&a, &limits).await.unwrap().is_none() {
                more += 1;
            }
        }
        assert_eq!(admitted + more, 5);
    }
}

/// Limits `(user, ip)` with windows starting an hour before `t`.
fn limits_at(t: Timestamp, user: u32, ip: u32) -> AttemptLimits {
    AttemptLimits {
        user_attempts: user,
        user_since: t - Delta::hours(1),
        ip_attempts: ip,
        ip_since: t - Delta::hours(1),
    }
}

/// A login-attempt record at `ts`.
fn attempt(
    user_id: Option<&str>,
    username: Option<&str>,
    ip: Option<&str>,
    ts: Timestamp,
) -> LoginAttempt {
    LoginAttempt {
        id: new_user_id(),
        user_id: user_id.map(str::to_string),
        username: username.map(str::to_string),
        ip: ip.map(str::to_string),
        ts,
        expires_at: ts + Delta::hours(2),
    }
}

mod two_factor {
    use super::*;
    use tokend::core::twofactor::{EmailCode, TotpSecret};

    fn code(hash: &str, expire: Timestamp) -> EmailCode {
        EmailCode {
            hash: hash.into(),
            expire,
            attempts: 0,
        }
    }

    store_tests! {
        async fn totp_enrolment_needs_the_pending_secret(kind) {
            let store = open(&kind).await;
            let u = inserted(&store, "tf1").await;
            assert_eq!(store.two_factor(&u.id).await.unwrap(), Default::default());
            let pending = TotpSecret::from_stored("JBSWY3DPEHPK3PXP");
            let other = TotpSecret::from_stored("KRSXG5CTMVRXEZLU");
            assert!(store.begin_totp(&u.id, &pending).await.unwrap());
            let state = store.two_factor(&u.id).await.unwrap();
            let totp = state.totp.clone().unwrap();
            assert!(!totp.enabled && !state.totp_enabled());
            assert_eq!(totp.temp_secret, Some(pending.clone()));
            // Not the pending secret: nothing changes.
            assert!(!store.enable_totp(&u.id, &other, &["x".into()]).await.unwrap());
            assert!(!store.two_factor(&u.id).await.unwrap().totp_enabled());
            let hashes = vec!["a".to_string(), "b".to_string()];
            assert!(store.enable_totp(&u.id, &pending, &hashes).await.unwrap());
            let totp = store.two_factor(&u.id).await.unwrap().totp.unwrap();
            assert!(totp.enabled && totp.temp_secret.is_none());
            assert_eq!(totp.secret, Some(pending.clone()));
            let mut got = totp.hashed_backup.clone();
            got.sort();
            assert_eq!(got, hashes);
            // Enabling twice (a replayed validation) does nothing.
            assert!(!store.enable_totp(&u.id, &pending, &[]).await.unwrap());
            assert!(store.disable_totp(&u.id).await.unwrap());
            assert!(!store.disable_totp(&u.id).await.unwrap());
            let state = store.two_factor(&u.id).await.unwrap();
            assert!(!state.totp_enabled());
            assert!(!store.use_backup_code(&u.id, "a").await.unwrap());
            // Unknown users: nothing written.
            assert!(!store.begin_totp("nobody", &pending).await.unwrap());
            assert!(!store.set_email_two_factor("nobody", true).await.unwrap());
        }

        async fn backup_codes_are_spent_once_even_concurrently(kind) {
            let store = open(&kind).await;
            let u = inserted(&store, "tf2").await;
            let secret = TotpSecret::from_stored("JBSWY3DPEHPK3PXP");
            store.begin_totp(&u.id, &secret).await.unwrap();
            store.enable_totp(&u.id, &secret, &["a".into(), "b".into()]).await.unwrap();
            let (x, y) = tokio::join!(store.use_backup_code(&u.id, "a"), store.use_backup_code(&u.id, "a"));
            assert!(x.unwrap() ^ y.unwrap(), "exactly one of two racing uses wins");
            assert!(!store.use_backup_code(&u.id, "a").await.unwrap());
            assert_eq!(store.two_factor(&u.id).await.unwrap().totp.unwrap().hashed_backup, vec!["b".to_string()]);
            assert!(store.set_backup_codes(&u.id, &["c".into()]).await.unwrap());
            assert!(!store.use_backup_code(&u.id, "b").await.unwrap());
            assert!(store.use_backup_code(&u.id, "c").await.unwrap());
        }

        async fn email_codes_are_kept_hashed_and_spent_once(kind) {
            let store = open(&kind).await;
            let u = inserted(&store, "tf3").await;
            assert!(store.set_email_two_factor(&u.id, true).await.unwrap());
            let expire = now() + Delta::minutes(60);
            store.set_email_code(&u.id, Some(&code("h1", expire))).await.unwrap();
            let state = store.two_factor(&u.id).await.unwrap();
            assert!(state.email_enabled);
            assert_eq!(state.email_code, Some(code("h1", expire)));
            store.count_email_code_failure(&u.id).await.unwrap();
            store.count_email_code_failure(&u.id).await.unwrap();
            assert_eq!(store.two_factor(&u.id).await.unwrap().email_code.unwrap().attempts, 2);
            assert!(!store.use_email_code(&u.id, "other").await.unwrap());
            let (x, y) = tokio::join!(store.use_email_code(&u.id, "h1"), store.use_email_code(&u.id, "h1"));
            assert!(x.unwrap() ^ y.unwrap(), "exactly one of two racing uses wins");
            assert_eq!(store.two_factor(&u.id).await.unwrap().email_code, None);
            // A new code resets the attempts; None removes it.
            store.set_email_code(&u.id, Some(&code("h2", expire))).await.unwrap();
            assert_eq!(store.two_factor(&u.id).await.unwrap().email_code.unwrap().attempts, 0);
            store.set_email_code(&u.id, None).await.unwrap();
            assert_eq!(store.two_factor(&u.id).await.unwrap().email_code, None);
            assert!(store.set_email_two_factor(&u.id, false).await.unwrap());
            assert!(!store.two_factor(&u.id).await.unwrap().email_enabled);
            // Deleting the user takes its second factors with it.
            store.set_email_two_factor(&u.id, true).await.unwrap();
            store.delete_user(&u.id, AdminGuard::Off).await.unwrap().unwrap();
            assert_eq!(store.two_factor(&u.id).await.unwrap(), Default::default());
        }
    }
}
