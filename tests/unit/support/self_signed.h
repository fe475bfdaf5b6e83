// SPDX-License-Identifier: Apache-2.0
//
// A fresh P-256 key and a self-signed certificate for it ("CN=localhost", valid for an
// hour), in memory: what a test's own TLS server presents.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <catch2/catch.hpp>

namespace dbwarden::testing {

struct SelfSigned {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  SelfSigned() {
    REQUIRE(key != nullptr);
    REQUIRE(cert != nullptr);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);
  }
  ~SelfSigned() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  SelfSigned(const SelfSigned&) = delete;
  SelfSigned& operator=(const SelfSigned&) = delete;
};

}  // namespace dbwarden::testing
