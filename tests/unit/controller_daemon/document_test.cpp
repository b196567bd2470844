// Which document of a file a Submit runs (pick_document): the seed's files
// hold several, and Chaos Mesh users apply them as they are.
#include <gtest/gtest.h>

#include "controller/daemon/manager.h"
#include "controller/experiment/parse.h"

namespace nq::controller {
namespace {

std::string doc(const std::string& name, const std::string& ns) {
  return "apiVersion: chaos-mesh.org/v1alpha1\nkind: PodChaos\nmetadata: {name: " + name +
         ", namespace: " + ns +
         "}\nspec:\n  action: pod-failure\n  mode: one\n  selector: {namespaces: [shop]}\n"
         "  duration: 30s\n";
}

std::vector<experiment::Document> load(const std::string& yaml) {
  auto docs = experiment::load_experiments(yaml, "f.yaml");
  EXPECT_TRUE(docs.ok()) << (docs.ok() ? "" : docs.error().message());
  return docs.ok() ? std::move(*docs) : std::vector<experiment::Document>{};
}

std::string name_of(const experiment::Document& d) {
  return document_name(d);
}

TEST(PickDocument, TheOnlyOneWithoutAName) {
  auto d = pick_document(load(doc("a", "x")), "", "f.yaml");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(name_of(*d), "x/a");
}

TEST(PickDocument, SeveralWithoutANameListsThemAndSuggestsDocument) {
  auto d = pick_document(load(doc("a", "x") + "---\n" + doc("b", "x")), "", "f.yaml");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().status_code(), Code::kInvalidArgument);
  EXPECT_EQ(d.error().message(),
            "f.yaml: holds 2 documents (x/a, x/b); name the one to run with --document");
}

TEST(PickDocument, ByNameOrNamespaceAndName) {
  const std::string yaml = doc("a", "x") + "---\n" + doc("b", "x") + "---\n" + doc("b", "y");
  auto a = pick_document(load(yaml), "a", "f.yaml");
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ(name_of(*a), "x/a");
  auto yb = pick_document(load(yaml), "y/b", "f.yaml");
  ASSERT_TRUE(yb.ok()) << yb.error().message();
  EXPECT_EQ(name_of(*yb), "y/b");
  auto ambiguous = pick_document(load(yaml), "b", "f.yaml");
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_NE(ambiguous.error().message().find("use namespace/name"), std::string::npos);
}

TEST(PickDocument, AnUnknownNameListsTheFilesNames) {
  auto d = pick_document(load(doc("a", "x") + "---\n" + doc("b", "x")), "c", "f.yaml");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().status_code(), Code::kInvalidArgument);
  EXPECT_EQ(d.error().message(), "document: \"c\" is not in f.yaml (it holds x/a, x/b)");
}

}  // namespace
}  // namespace nq::controller
