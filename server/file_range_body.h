// A Beast body that sends a byte range of a file in 64 KiB pieces, so a
// multi-gigabyte result never sits in memory (Range downloads resume here).
// Thread safety: one response, one connection strand.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <utility>

namespace loom::server {

struct FileRangeBody {
  class value_type {
   public:
    value_type() = default;
    value_type(int fd, uint64_t offset, uint64_t length) : fd_(fd), offset_(offset), length_(length) {}
    value_type(value_type&& o) noexcept : fd_(std::exchange(o.fd_, -1)), offset_(o.offset_), length_(o.length_) {}
    value_type& operator=(value_type&& o) noexcept {
      if (this != &o) {
        reset();
        fd_ = std::exchange(o.fd_, -1);
        offset_ = o.offset_;
        length_ = o.length_;
      }
      return *this;
    }
    ~value_type() { reset(); }
    int fd() const { return fd_; }
    uint64_t offset() const { return offset_; }
    uint64_t length() const { return length_; }

   private:
    void reset() {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
    }
    int fd_ = -1;
    uint64_t offset_ = 0, length_ = 0;
  };

  static uint64_t size(const value_type& body) { return body.length(); }

  class writer {
   public:
    using const_buffers_type = boost::asio::const_buffer;
    template <bool isRequest, class Fields>
    writer(const boost::beast::http::header<isRequest, Fields>&, const value_type& body) : body_(body) {}
    void init(boost::beast::error_code& ec) { ec = {}; }
    boost::optional<std::pair<const_buffers_type, bool>> get(boost::beast::error_code& ec) {
      const uint64_t remaining = body_.length() - pos_;
      if (remaining == 0) {
        ec = {};
        return boost::none;
      }
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf_.size(), remaining));
      ssize_t got = ::pread(body_.fd(), buf_.data(), want, static_cast<off_t>(body_.offset() + pos_));
      if (got <= 0) {
        ec = boost::beast::errc::make_error_code(boost::beast::errc::io_error);
        return boost::none;
      }
      pos_ += static_cast<uint64_t>(got);
      ec = {};
      return {{const_buffers_type(buf_.data(), static_cast<size_t>(got)), pos_ < body_.length()}};
    }

   private:
    const value_type& body_;
    uint64_t pos_ = 0;
    std::array<char, 64 * 1024> buf_;
  };
};

}  // namespace loom::server
