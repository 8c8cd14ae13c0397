/*
 * Copyright 2026 gr-shapft authors
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <gnuradio/block_detail.h>
#include <gnuradio/shapft/frame_tags.h>
#include <cmath>
#include <stdexcept>

namespace gr {
namespace shapft {

namespace {

double real_number(const pmt::pmt_t& value)
{
    return pmt::is_number(value) && !pmt::is_complex(value) ? pmt::to_double(value) : NAN;
}

} // namespace

frame_tags read_frame_tags(const gr::block_sptr& block,
                           uint64_t n,
                           const std::string& label_key,
                           const std::string& snr_key,
                           const std::vector<std::string>& names)
{
    if (!block || !block->detail()) {
        throw std::invalid_argument("read_frame_tags: the block is not running");
    }
    const uint64_t start = block->nitems_read(0);
    // One pass over all the window's tags: asking for each key would walk them twice.
    std::vector<gr::tag_t> tags;
    block->detail()->get_tags_in_range(tags, 0, start, start + n, block->unique_id());

    frame_tags result;
    result.labels.assign(n, -1);
    result.snrs.assign(n, NAN);
    result.names = names;
    // Symbols are interned: pmt::eqv compares them by pointer (and other values by value).
    std::vector<pmt::pmt_t> values;
    for (const auto& name : names) {
        values.push_back(pmt::intern(name));
    }
    const pmt::pmt_t label = pmt::intern(label_key);
    const pmt::pmt_t snr = pmt::intern(snr_key);
    for (const auto& tag : tags) {
        const uint64_t item = tag.offset - start;
        if (pmt::eq(tag.key, snr)) {
            result.snrs[item] = real_number(tag.value);
        } else if (pmt::eq(tag.key, label)) {
            size_t k = 0;
            while (k < values.size() && !pmt::eqv(values[k], tag.value)) {
                ++k;
            }
            if (k == values.size()) { // not one of the names: keep it, as text
                values.push_back(tag.value);
                result.names.push_back(pmt::is_symbol(tag.value) ? pmt::symbol_to_string(tag.value)
                                                                  : pmt::write_string(tag.value));
            }
            result.labels[item] = static_cast<int64_t>(k);
        }
    }
    return result;
}

} // namespace shapft
} // namespace gr
