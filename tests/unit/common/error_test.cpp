#include "common/error.h"

#include <gtest/gtest.h>
#include <netlink/errno.h>

#include <cerrno>

#include "common/result.h"

namespace nq {
namespace {

TEST(Error, ErrnoKeepsCodeAndContext) {
  Error e = Error::from_errno(ENOENT, "open /x");
  EXPECT_EQ(e.sys_errno(), ENOENT);
  EXPECT_EQ(e.status_code(), Code::kNotFound);
  EXPECT_EQ(e.message(), "open /x: No such file or directory");
  e.wrap("resolve pod a/b");
  EXPECT_EQ(e.message(), "resolve pod a/b: open /x: No such file or directory");
}

TEST(Error, MapsErrnoToStatus) {
  EXPECT_EQ(Error::from_errno(EPERM, "x").status_code(), Code::kPermissionDenied);
  EXPECT_EQ(Error::from_errno(EINVAL, "x").status_code(), Code::kInvalidArgument);
  EXPECT_EQ(Error::from_errno(EEXIST, "x").status_code(), Code::kAlreadyExists);
  EXPECT_EQ(Error::from_errno(EOPNOTSUPP, "x").status_code(), Code::kFailedPrecondition);
}

TEST(Error, NetlinkCategory) {
  Error e = Error::from_netlink(-NLE_OBJ_NOTFOUND, "add qdisc");
  EXPECT_EQ(e.status_code(), Code::kNotFound);
  EXPECT_NE(e.message().find("add qdisc: "), std::string::npos);
}

TEST(Error, InvalidArgumentNamesField) {
  Error e = Error::invalid_argument("spec.netem.loss", "must be within 0..100");
  EXPECT_EQ(e.message(), "spec.netem.loss: must be within 0..100");
  EXPECT_EQ(e.status_code(), Code::kInvalidArgument);
}

Result<int> half(int v) {
  if (v % 2) return Error::invalid_argument("v", "odd");
  return v / 2;
}

Result<int> quarter(int v) {
  NQ_ASSIGN_OR_RETURN(int h, half(v));
  NQ_ASSIGN_OR_RETURN(int q, half(h));
  return q;
}

Status check(int v) {
  NQ_TRY(quarter(v));
  return ok();
}

TEST(Result, PropagatesErrors) {
  EXPECT_EQ(quarter(8).value(), 2);
  EXPECT_FALSE(quarter(6).ok());
  EXPECT_EQ(quarter(6).error().message(), "v: odd");
  EXPECT_TRUE(check(4).ok());
  EXPECT_FALSE(check(2).ok());
}

}  // namespace
}  // namespace nq
