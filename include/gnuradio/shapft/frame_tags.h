/*
 * Copyright 2026 gr-shapft authors
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#ifndef INCLUDED_SHAPFT_FRAME_TAGS_H
#define INCLUDED_SHAPFT_FRAME_TAGS_H

#include <gnuradio/block.h>
#include <gnuradio/shapft/api.h>
#include <cstdint>
#include <string>
#include <vector>

namespace gr {
namespace shapft {

/*!
 * \brief The label and SNR tags of items of a block's input 0, as arrays.
 *
 * The channel-model source tags every frame with its class (`label`, a symbol) and
 * SNR (`snr_db`, a number). A Python block reading those tags one by one spends a few
 * microseconds per frame on them, as much as a compact classifier spends classifying
 * the frame; here one pass over the window's tags fills two arrays.
 */
struct SHAPFT_API frame_tags {
    //! Per item: index in `names` of its label tag's value; -1 where untagged.
    std::vector<int64_t> labels;
    //! Per item: its SNR tag's value; NaN where untagged or not a real number.
    std::vector<double> snrs;
    //! The names given, followed by any other label values seen (as text).
    std::vector<std::string> names;
};

/*!
 * \brief Read the tags with keys label_key and snr_key on items [nitems_read(0) + first,
 * nitems_read(0) + first + n) of input 0 of a running block (call it from work()).
 * Where an item carries two tags of one key, the later one in GNU Radio's order wins.
 */
SHAPFT_API frame_tags read_frame_tags(const gr::block_sptr& block,
                                      uint64_t first,
                                      uint64_t n,
                                      const std::string& label_key,
                                      const std::string& snr_key,
                                      const std::vector<std::string>& names);

} // namespace shapft
} // namespace gr

#endif /* INCLUDED_SHAPFT_FRAME_TAGS_H */
