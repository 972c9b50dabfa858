//! Members (admins): add, change a role, remove, and make a one-time sign-in link.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Redirect, Response},
};
use key_proto::v1;
use serde::Deserialize;

use super::{Frame, day, form::Fields, frame, render, role_name, when};
use crate::{Console, error::PageError, once::Nonces, session::SignedIn, upstream};

#[derive(Debug)]
struct MemberRow {
    id: String,
    user_id: String,
    role: &'static str,
    added: String,
    /// The one-time nonce of the member's sign-in link form.
    nonce: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    frame: Frame,
    members: Vec<MemberRow>,
    roles: [&'static str; 4],
    next_page: String,
    done: &'static str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct MembersQuery {
    #[serde(default)]
    page_token: String,
    #[serde(default)]
    done: String,
}

pub(crate) async fn list(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Query(query): Query<MembersQuery>,
) -> Result<Response, PageError> {
    let (frame, _) = frame(&console, &signed, &headers, "Members", "members").await?;
    let listed = console
        .client()
        .list_members(upstream::call(
            &headers,
            Some(signed.token()),
            v1::ListMembersRequest {
                page_size: 100,
                page_token: query.page_token,
            },
        ))
        .await?
        .into_inner();
    Ok(render(&MembersPage {
        frame,
        members: listed
            .members
            .iter()
            .map(|member| MemberRow {
                id: member.id.clone(),
                user_id: member.user_id.clone(),
                role: role_name(v1::Role::try_from(member.role).unwrap_or_default()),
                added: day(member.create_time.as_ref()),
                nonce: Nonces::issue(),
            })
            .collect(),
        roles: ["owner", "admin", "member", "viewer"],
        next_page: form_urlencoded::byte_serialize(listed.next_page_token.as_bytes()).collect(),
        done: match query.done.as_str() {
            "added" => "The member is added.",
            "changed" => "The role is changed.",
            "removed" => "The member is removed.",
            _ => "",
        },
    }))
}

fn role(name: &str) -> v1::Role {
    match name {
        "owner" => v1::Role::Owner,
        "admin" => v1::Role::Admin,
        "member" => v1::Role::Member,
        "viewer" => v1::Role::Viewer,
        _ => v1::Role::Unspecified,
    }
}

pub(crate) async fn add(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    console
        .client()
        .add_member(upstream::call(
            &headers,
            Some(signed.token()),
            v1::AddMemberRequest {
                user_id: fields.get("user_id").to_owned(),
                role: role(fields.get("role")).into(),
            },
        ))
        .await?;
    Ok(Redirect::to("/console/settings/members?done=added").into_response())
}

/// Changes a member's role, or removes them (`action=remove`).
pub(crate) async fn change(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    let client = console.client();
    let done = if fields.get("action") == "remove" {
        client
            .clone()
            .remove_member(upstream::call(
                &headers,
                Some(signed.token()),
                v1::RemoveMemberRequest { id },
            ))
            .await?;
        "removed"
    } else {
        client
            .clone()
            .update_member(upstream::call(
                &headers,
                Some(signed.token()),
                v1::UpdateMemberRequest {
                    id,
                    role: role(fields.get("role")).into(),
                },
            ))
            .await?;
        "changed"
    };
    Ok(Redirect::to(&format!("/console/settings/members?done={done}")).into_response())
}

#[derive(Template)]
#[template(path = "sign_in_link.html")]
struct LinkPage {
    frame: Frame,
    link: String,
    expires: String,
}

/// Makes a one-time sign-in link for a member, shown once. The token travels in the link's
/// fragment, which browsers do not send to servers or put in a `Referer`.
pub(crate) async fn sign_in_link(
    State(console): State<Console>,
    signed: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    fields: Fields,
) -> Result<Response, PageError> {
    signed.check_csrf(fields.get("csrf"))?;
    console.spend_nonce(fields.get("nonce"))?;
    let (frame, _) = frame(&console, &signed, &headers, "Sign-in link", "members").await?;
    let created = console
        .client()
        .create_sign_in_link(upstream::call(
            &headers,
            Some(signed.token()),
            v1::CreateSignInLinkRequest { member_id: id },
        ))
        .await?
        .into_inner();
    let scheme = if console.cookies().secure {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost");
    Ok(render(&LinkPage {
        frame,
        link: format!("{scheme}://{host}/console/invite#{}", created.sign_in_token),
        expires: when(created.expire_time.as_ref()),
    }))
}
