// Control: proxy tables, the Lyapunov controller (METHOD §8.3), SNR processes, the proxy simulation,
// the (V, μ) search (METHOD §8.4, P18), the oracle bound, and `tokcom optimize`.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/helpers.h"
#include "tokcom/control/lyapunov.h"
#include "tokcom/control/oracle.h"
#include "tokcom/control/proxy_table.h"
#include "tokcom/control/search.h"
#include "tokcom/control/simulate.h"
#include "tokcom/control/snr_process.h"
#include "tokcom/control/synthetic_table.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"

using namespace tokcom;
using tokcom::test::error_of;

namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// Two decisions at one SNR, as in the STYLE §3 hand example.
ProxyTable two_decision_table() {
  return ProxyTable::from_rows({{"m", "awgn", "robust", 10.0, 0.5, 0.9, 0.1, 0.9},
                                {"m", "awgn", "robust", 10.0, 0.1, 0.9, 0.01, 0.8}});
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- proxy table

TEST(ProxyTable, WriteReadRoundTripWithExactHeader) {
  const ProxyTable t = make_synthetic_table();
  EXPECT_EQ(t.decision_count(), 77);  // METHOD §8.1: 11 α × 7 r
  EXPECT_EQ(t.snr_count(), 10);
  const std::string path = test::temp_dir("table") + "/t.csv";
  t.write_csv(path);
  EXPECT_EQ(lines_of(path).front(), "method,channel,regime,snr_db,ratio,budget,zeta,accuracy");
  const ProxyTable back = ProxyTable::read_csv(path);
  ASSERT_EQ(back.decision_count(), 77);
  for (int d = 0; d < 77; ++d) {
    EXPECT_EQ(back.decisions()[d].ratio, t.decisions()[d].ratio);
    EXPECT_EQ(back.decisions()[d].budget, t.decisions()[d].budget);
    for (int s = 0; s < t.snr_count(); ++s) {
      EXPECT_EQ(back.accuracy(d, s), t.accuracy(d, s));
      EXPECT_EQ(back.zeta(d, s), t.zeta(d, s));
    }
  }
}

TEST(ProxyTable, SyntheticZetaFollowsSpecAccounting) {  // METHOD §5.5: ζ = (α·196 + 2)·d_r / 150 528
  const ProxyTable t = make_synthetic_table();
  int checked = 0;
  for (int d = 0; d < t.decision_count(); ++d) {
    const Decision& x = t.decisions()[d];
    if (x.ratio == 0.15 && x.budget == 0.5) {
      EXPECT_NEAR(t.zeta(d, 0), (0.5 * 196 + 2) * 28 / 150528.0, 1e-15);
      ++checked;
    }
    if (x.ratio == 0.001 && x.budget == 0.001) {
      EXPECT_NEAR(t.zeta(d, 0), (0.196 + 2) * 1 / 150528.0, 1e-15);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2);
}

TEST(ProxyTable, NearestTiesGoToLowerAndInterpolationIsLinear) {
  const ProxyTable t = make_synthetic_table();  // grid −20, −15, …, 25
  EXPECT_EQ(t.snr_grid()[t.nearest(-17.5)], -20.0);  // exact tie → lower (METHOD §8.2)
  EXPECT_EQ(t.snr_grid()[t.nearest(-17.4)], -15.0);
  EXPECT_EQ(t.snr_grid()[t.nearest(-99.0)], -20.0);
  EXPECT_EQ(t.snr_grid()[t.nearest(99.0)], 25.0);
  const SnrLookup at = t.lookup(11.0, /*interpolate=*/true);
  EXPECT_EQ(t.snr_grid()[at.lower], 10.0);
  EXPECT_EQ(t.snr_grid()[at.upper], 15.0);
  EXPECT_NEAR(at.weight, 0.2, 1e-12);
  LyapunovController c(t, {/*V=*/1e9, /*μ=*/1, /*ζ_max=*/1, /*interpolate=*/true});
  const Choice ch = c.choose(11.0);
  EXPECT_NEAR(ch.accuracy, 0.8 * t.accuracy(ch.index, at.lower) + 0.2 * t.accuracy(ch.index, at.upper), 1e-15);
}

TEST(ProxyTable, BadTablesNameTheProblem) {
  const std::string dir = test::temp_dir("badtable");
  const std::string h = "method,channel,regime,snr_db,ratio,budget,zeta,accuracy\n";
  write_text(dir + "/missing.csv", h + "m,awgn,robust,0,0.1,0.5,0.01,0.5\nm,awgn,robust,5,0.1,0.6,0.01,0.5\n");
  EXPECT_NE(error_of([&] { ProxyTable::read_csv(dir + "/missing.csv"); }).find("missing entry for snr_db 0"), std::string::npos);
  write_text(dir + "/pct.csv", h + "m,awgn,robust,0,0.1,0.5,0.01,85.2\n");
  EXPECT_NE(error_of([&] { ProxyTable::read_csv(dir + "/pct.csv"); }).find("not a percentage"), std::string::npos);
  write_text(dir + "/nan.csv", h + "m,awgn,robust,0,0.1,0.5,abc,0.5\n");
  const std::string msg = error_of([&] { ProxyTable::read_csv(dir + "/nan.csv"); });
  EXPECT_NE(msg.find("line 2: column 'zeta' is 'abc'"), std::string::npos) << msg;
  write_text(dir + "/two.csv", h + "a,awgn,robust,0,0.1,0.5,0.01,0.5\nb,awgn,robust,0,0.1,0.5,0.01,0.5\n");
  EXPECT_NE(error_of([&] { ProxyTable::read_csv(dir + "/two.csv"); }).find("--method"), std::string::npos);
  EXPECT_EQ(ProxyTable::read_csv(dir + "/two.csv", {"b", "", ""}).method(), "b");
  write_text(dir + "/hdr.csv", "snr,ratio\n1,2\n");
  EXPECT_NE(error_of([&] { ProxyTable::read_csv(dir + "/hdr.csv"); }).find("lacks column 'method'"), std::string::npos);
}

// A channel spec with commas ("rician:K=4,csi=zf") is one RFC 4180-quoted field in every CSV that
// names it: the sweep writes it quoted, and the proxy table reads and writes it the same way.
TEST(ProxyTable, AQuotedChannelWithCommasIsOneField) {
  const std::string dir = test::temp_dir("quoted");
  write_text(dir + "/sweep.csv",
             "method,regime,channel,snr_db,ratio,alpha,zeta,kept_tokens,symbols,accuracy,n_images,seed,mode\n"
             "m,robust,\"rician:K=4,csi=zf\",0,0.1,0.5,0.01,10,100,0.5,64,0,soft\n"
             "m,robust,awgn,0,0.1,0.5,0.01,10,100,0.7,64,0,soft\n");
  const ProxyTable t = ProxyTable::read_csv(dir + "/sweep.csv", {"", "rician:K=4,csi=zf", ""});
  EXPECT_EQ(t.channel(), "rician:K=4,csi=zf");
  EXPECT_EQ(t.accuracy(0, 0), 0.5);
  const ProxyTable u = ProxyTable::from_rows({{"m", "rician:K=4,csi=zf", "robust", 10.0, 0.5, 0.9, 0.1, 0.9}});
  u.write_csv(dir + "/t.csv");
  EXPECT_EQ(lines_of(dir + "/t.csv")[1], "m,\"rician:K=4,csi=zf\",robust,10,0.5,0.9,0.1,0.9");
  EXPECT_EQ(ProxyTable::read_csv(dir + "/t.csv").channel(), "rician:K=4,csi=zf");
}

// ---------------------------------------------------------------- controller

TEST(Lyapunov, QueueUpdateKnownAnswers) {
  // STYLE §3 by hand: V = 10, Z = 2, μ = 10, ζ_max = 0.05: (.9, ζ .1) costs −8.8 and beats
  // (.8, .01) at −7.98; then Z = max(0, 2 + 10·(0.1 − 0.05)) = 2.5.
  const ProxyTable t = two_decision_table();
  LyapunovController c(t, {10.0, 10.0, 0.05});
  c.set_queue(2.0);
  const Choice ch = c.choose(10.0);
  EXPECT_EQ(ch.index, 0);
  c.observe(ch.zeta);
  EXPECT_DOUBLE_EQ(c.queue(), 2.5);
  // Z = 2.5 → costs −9 + 0.25 = −8.75 vs −8 + 0.025 = −7.975: still the first.
  EXPECT_EQ(c.decide(10.0).ratio, 0.5);
  c.set_queue(20.0);  // −9 + 2 = −7 vs −8 + 0.2 = −7.8: the cheap one
  EXPECT_EQ(c.decide(10.0).ratio, 0.1);
  c.set_queue(0.1);
  c.observe(0.0);  // 0.1 + 10·(0 − 0.05) < 0 → clamped to 0
  EXPECT_EQ(c.queue(), 0.0);
  EXPECT_EQ(c.slots(), 2);
}

TEST(Lyapunov, TiesGoToFirstInTableOrder) {
  const ProxyTable t = ProxyTable::from_rows({{"m", "c", "r", 0, 0.2, 0.5, 0.02, 0.7},
                                              {"m", "c", "r", 0, 0.1, 0.5, 0.02, 0.7}});
  LyapunovController c(t, {1.0, 1.0, 0.01});
  EXPECT_EQ(c.decide(0.0).ratio, 0.2);
}

TEST(Lyapunov, HugeVPicksMostAccurateHugeQueuePicksCheapest) {
  const ProxyTable t = make_synthetic_table();
  for (int s = 0; s < t.snr_count(); ++s) {
    int most_accurate = 0, cheapest = 0;  // brute force, first in table order among ties
    for (int d = 1; d < t.decision_count(); ++d) {
      if (t.accuracy(d, s) > t.accuracy(most_accurate, s)) most_accurate = d;
      // Among equally cheap decisions a positive V still prefers the more accurate one.
      if (t.zeta(d, s) < t.zeta(cheapest, s) ||
          (t.zeta(d, s) == t.zeta(cheapest, s) && t.accuracy(d, s) > t.accuracy(cheapest, s)))
        cheapest = d;
    }
    LyapunovController greedy(t, {1e12, 1.0, 0.01});
    greedy.set_queue(1.0);
    EXPECT_EQ(greedy.choose(t.snr_grid()[s]).index, most_accurate) << "snr " << t.snr_grid()[s];
    LyapunovController frugal(t, {1.0, 1.0, 0.01});
    frugal.set_queue(1e12);
    EXPECT_EQ(frugal.choose(t.snr_grid()[s]).index, cheapest) << "snr " << t.snr_grid()[s];
  }
}

TEST(Lyapunov, SaveRestoreContinuesIdentically) {
  const ProxyTable t = make_synthetic_table();
  const LyapunovOptions o{100.0, 10.0, 0.01};
  auto process = make_snr_process("gauss:5,6");
  std::mt19937_64 rng(3);
  const std::vector<double> snr = draw_snr(*process, 1000, rng);
  LyapunovController a(t, o);
  for (int k = 0; k < 500; ++k) a.observe(a.choose(snr[k]).zeta);
  const std::string state = a.save_state();
  LyapunovController b(t, o);
  b.restore_state(state);
  EXPECT_EQ(b.queue(), a.queue());
  EXPECT_EQ(b.slots(), 500);
  for (int k = 500; k < 1000; ++k) {
    const Choice ca = a.choose(snr[k]), cb = b.choose(snr[k]);
    ASSERT_EQ(ca.index, cb.index) << "slot " << k;
    a.observe(ca.zeta);
    b.observe(cb.zeta);
    ASSERT_EQ(a.queue(), b.queue()) << "slot " << k;
  }
  EXPECT_GT(a.queue(), 0.0);  // the queue was really in play
  LyapunovController other(t, {10.0, 10.0, 0.01});
  EXPECT_NE(error_of([&] { other.restore_state(state); }).find("V=100"), std::string::npos);
  EXPECT_NE(error_of([&] { b.restore_state("{\"queue\": 1}"); }).find("missing numeric key"), std::string::npos);
  EXPECT_NE(error_of([&] { b.restore_state("not json"); }).find("FormatError"), std::string::npos);
}

TEST(Lyapunov, BadOptionsAreConfigErrors) {
  const ProxyTable t = two_decision_table();
  EXPECT_NE(error_of([&] { LyapunovController(t, {1.0, 0.0, 0.01}); }).find("mu"), std::string::npos);
  EXPECT_NE(error_of([&] { LyapunovController(t, {1.0, 1.0, -1.0}); }).find("zeta_max"), std::string::npos);
}

// ---------------------------------------------------------------- simulation

TEST(Simulate, LongRunZetaWithinOnePercentWhenBinding) {
  const ProxyTable t = make_synthetic_table();
  auto process = make_snr_process("gauss:10,2.5");
  for (double zeta_max : {0.005, 0.02}) {
    LyapunovController c(t, {10.0, 100.0, zeta_max});  // transient excess ≈ Z(T)/(μT): small V/μ
    std::mt19937_64 rng(7);
    const SimulationResult r = simulate(c, *process, 100000, 100000, rng, /*keep_trace=*/false);
    // Binding: the unconstrained greedy choice would cost far more than ζ_max.
    EXPECT_GT(t.zeta(t.decision_count() - 1, t.nearest(10.0)), 5 * zeta_max);
    EXPECT_NEAR(r.summary.zeta_mean / zeta_max, 1.0, 0.01) << "zeta_max " << zeta_max;
  }
}

TEST(Simulate, TraceMatchesSummaryAndHeader) {
  const ProxyTable t = make_synthetic_table();
  LyapunovController c(t, {100.0, 10.0, 0.01});
  auto process = make_snr_process("fixed:10");
  std::mt19937_64 rng(1);
  const SimulationResult r = simulate(c, *process, 300, 100, rng);
  ASSERT_EQ(r.trace.size(), 300u);
  double acc = 0, zeta = 0;
  for (int k = 200; k < 300; ++k) {
    acc += r.trace[k].correct;
    zeta += r.trace[k].zeta;
  }
  EXPECT_NEAR(r.summary.accuracy_mean, acc / 100, 1e-12);
  EXPECT_NEAR(r.summary.zeta_mean, zeta / 100, 1e-12);
  EXPECT_EQ(r.trace[0].z_before, 0.0);  // Z(0) = 0
  EXPECT_NEAR(r.trace[1].z_before, std::max(0.0, 10.0 * (r.trace[0].zeta - 0.01)), 1e-15);
  const std::string path = test::temp_dir("trace") + "/trace.csv";
  write_trace_csv(path, r.trace);
  EXPECT_EQ(lines_of(path).front(), "slot,snr_db,ratio,budget,zeta,z_before,correct");
  EXPECT_EQ(lines_of(path).size(), 301u);
  EXPECT_NE(error_of([&] { simulate(c, *process, 10, 11, rng); }).find("window"), std::string::npos);
}

// ---------------------------------------------------------------- SNR processes

TEST(SnrProcess, SpecsParseAndBadSpecsSayWhatIsExpected) {
  EXPECT_EQ(make_snr_process("gauss:10,2.5")->spec(), "gauss:10,2.5");
  EXPECT_EQ(make_snr_process("fixed:20")->spec(), "fixed:20");
  EXPECT_EQ(make_snr_process("gauss-markov:10,2.5,rho=0.9")->spec(), "gauss-markov:10,2.5,rho=0.9");
  EXPECT_NE(make_snr_process("gilbert-elliott:good=20,bad=0,p_gb=0.05,p_bg=0.2"), nullptr);
  EXPECT_NE(error_of([] { make_snr_process("gauss:10"); }).find("expected 2 (gauss:MEAN,SD)"), std::string::npos);
  EXPECT_NE(error_of([] { make_snr_process("gauss:10,x"); }).find("ConfigError"), std::string::npos);
  EXPECT_NE(error_of([] { make_snr_process("rayleigh:3"); }).find("unknown kind 'rayleigh'"), std::string::npos);
  EXPECT_NE(error_of([] { make_snr_process("gauss-markov:10,2.5,rho=1.5"); }).find("rho"), std::string::npos);
  EXPECT_NE(error_of([] { make_snr_process("gilbert-elliott:good=20,bad=0,p_gb=0.05"); }).find("missing p_bg="),
            std::string::npos);
  EXPECT_NE(error_of([] { make_snr_process("10"); }).find("KIND:PARAMS"), std::string::npos);
  EXPECT_EQ(split_scenarios("gauss:0,2.5,fixed:10,gauss-markov:10,2.5,rho=0.9"),
            (std::vector<std::string>{"gauss:0,2.5", "fixed:10", "gauss-markov:10,2.5,rho=0.9"}));
  EXPECT_EQ(paper_scenarios().size(), 5u);
}

TEST(SnrProcess, CorrelatedProcessesHaveTheirStationaryStatistics) {
  std::mt19937_64 rng(5);
  auto gm = make_snr_process("gauss-markov:10,2.5,rho=0.9");
  const std::vector<double> x = draw_snr(*gm, 200000, rng);
  double mean = 0, var = 0, cov = 0;
  for (double v : x) mean += v / x.size();
  for (size_t k = 0; k < x.size(); ++k) {
    var += (x[k] - mean) * (x[k] - mean) / x.size();
    if (k > 0) cov += (x[k] - mean) * (x[k - 1] - mean) / (x.size() - 1);
  }
  EXPECT_NEAR(mean, 10.0, 0.15);          // sd of the mean ≈ 2.5·√(19/2e5) ≈ 0.024
  EXPECT_NEAR(std::sqrt(var), 2.5, 0.1);
  EXPECT_NEAR(cov / var, 0.9, 0.02);
  auto ge = make_snr_process("gilbert-elliott:good=20,bad=0,p_gb=0.05,p_bg=0.2");
  const std::vector<double> y = draw_snr(*ge, 200000, rng);
  double good = 0;
  for (double v : y) good += (v == 20.0) / static_cast<double>(y.size());
  EXPECT_NEAR(good, 0.2 / 0.25, 0.02);
  EXPECT_NEAR(ge->marginal_cdf(10.0), 0.2, 1e-12);  // P(bad) = p_gb / (p_gb + p_bg)
}

TEST(SnrProcess, TraceReplayAndMalformedTraces) {
  const std::string dir = test::temp_dir("snrtrace");
  write_text(dir + "/ok.csv", "3\n-1.5\n7\n");
  auto p = make_snr_process("trace:" + dir + "/ok.csv");
  std::mt19937_64 rng(0);
  EXPECT_EQ(draw_snr(*p, 5, rng), (std::vector<double>{3, -1.5, 7, 3, -1.5}));  // cycles
  write_text(dir + "/hdr.csv", "slot,snr_db,ratio\n0,4,0.1\n1,5,0.1\n");  // e.g. a trace.csv
  EXPECT_EQ(read_snr_trace(dir + "/hdr.csv"), (std::vector<double>{4, 5}));
  write_text(dir + "/bad.csv", "3\n4\nabc\n");
  std::string msg = error_of([&] { make_snr_process("trace:" + dir + "/bad.csv"); });
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'abc'"), std::string::npos) << msg;
  write_text(dir + "/empty.csv", "");
  msg = error_of([&] { make_snr_process("trace:" + dir + "/empty.csv"); });
  EXPECT_NE(msg.find("is empty"), std::string::npos) << msg;
  write_text(dir + "/blank.csv", "\n\n");
  EXPECT_NE(error_of([&] { read_snr_trace(dir + "/blank.csv"); }).find("is empty"), std::string::npos);
  EXPECT_NE(error_of([&] { read_snr_trace(dir + "/nope.csv"); }).find("cannot be opened"), std::string::npos);
}

TEST(SnrProcess, GridDistributionMatchesNearestLookupFrequencies) {
  const ProxyTable t = make_synthetic_table();
  auto p = make_snr_process("gauss:2,6");
  const std::vector<double> prob = grid_distribution(t, *p);
  std::vector<double> freq(t.snr_count(), 0.0);
  std::mt19937_64 rng(9);
  const int n = 200000;
  for (double s : draw_snr(*p, n, rng)) freq[t.nearest(s)] += 1.0 / n;
  double total = 0;
  for (int s = 0; s < t.snr_count(); ++s) {
    total += prob[s];
    EXPECT_NEAR(freq[s], prob[s], 0.005) << "grid " << t.snr_grid()[s];  // ≥ 4σ of a binomial
  }
  EXPECT_NEAR(total, 1.0, 1e-12);
}

// ---------------------------------------------------------------- search

TEST(Search, PaperAndReferenceRules) {
  auto row = [](double v, double mu, double acc, bool feasible) {
    SearchRow r;
    r.tradeoff = v;
    r.queue_step = mu;
    r.summary.accuracy_mean = acc;
    r.summary.feasible = feasible;
    return r;
  };
  const std::vector<SearchRow> rows = {row(1, 1, 0.5, true), row(10, 1, 0.8, true), row(10, 10, 0.8, true),
                                       row(100, 1, 0.9, false), row(100, 10, 0.6, true), row(100, 100, 0.7, true)};
  EXPECT_EQ(*select(rows, SelectionRule::kPaper), 1u);      // highest feasible accuracy, first of ties
  EXPECT_EQ(*select(rows, SelectionRule::kReference), 4u);  // largest feasible V, first μ
  EXPECT_FALSE(select({row(1, 1, 0.5, false)}, SelectionRule::kPaper).has_value());
  EXPECT_EQ(parse_selection_rule("reference"), SelectionRule::kReference);
  EXPECT_NE(error_of([] { parse_selection_rule("best"); }).find("paper or reference"), std::string::npos);
}

TEST(Search, GridMarksOneSelectionPerRule) {
  const ProxyTable t = make_synthetic_table();
  auto p = make_snr_process("gauss:10,2.5");
  std::mt19937_64 rng(2);
  SearchOptions o;
  o.slots = 3000;
  o.window = 1000;
  const std::vector<SearchRow> rows = grid_search(t, draw_snr(*p, o.slots, rng), 0.01, o);
  ASSERT_EQ(rows.size(), 18u);
  int paper = 0, reference = 0;
  for (const auto& r : rows) {
    paper += r.selected_paper;
    reference += r.selected_reference;
    if (r.selected_paper || r.selected_reference) {
      EXPECT_TRUE(r.summary.feasible);
    }
  }
  EXPECT_EQ(paper, 1);
  EXPECT_EQ(reference, 1);
}

// ---------------------------------------------------------------- oracle

// Brute force: the LP optimum mixes at most two deterministic policies (one constraint), so try
// every pair of deterministic policies and the best feasible mixture of each.
double brute_force_oracle(const std::vector<OracleState>& states, double zeta_max) {
  const int n_states = static_cast<int>(states.size()), n = static_cast<int>(states[0].accuracy.size());
  int policies = 1;
  for (int s = 0; s < n_states; ++s) policies *= n;
  auto value = [&](int pol, double& acc, double& zeta) {
    acc = zeta = 0;
    for (int s = 0; s < n_states; ++s, pol /= n) {
      acc += states[s].weight * states[s].accuracy[pol % n];
      zeta += states[s].weight * states[s].zeta[pol % n];
    }
  };
  double best = -1;
  for (int i = 0; i < policies; ++i) {
    for (int j = 0; j < policies; ++j) {
      double ai, zi, aj, zj;
      value(i, ai, zi);
      value(j, aj, zj);
      if (zi <= zeta_max) best = std::max(best, ai);
      if (zi > zeta_max && zj < zeta_max) {  // mix so that E[ζ] = ζ_max
        const double th = (zeta_max - zj) / (zi - zj);
        best = std::max(best, th * ai + (1 - th) * aj);
      }
    }
  }
  return best;
}

TEST(Oracle, EqualsBruteForceOnToys) {
  const OracleState one{1.0, {0.9, 0.7, 0.4}, {0.10, 0.03, 0.01}};
  for (double zmax : {0.005, 0.01, 0.02, 0.05, 0.1, 0.2}) {
    const OracleResult r = oracle_bound({one}, zmax);
    if (zmax < 0.01) {
      EXPECT_FALSE(r.feasible);
      continue;
    }
    EXPECT_NEAR(r.accuracy, brute_force_oracle({one}, zmax), 1e-12) << zmax;
  }
  // By hand at ζ_max = 0.02: mix (0.7, 0.03) and (0.4, 0.01) half-half → 0.55.
  EXPECT_NEAR(oracle_bound({one}, 0.02).accuracy, 0.55, 1e-12);
  const std::vector<OracleState> two = {{0.3, {0.9, 0.7, 0.4}, {0.10, 0.03, 0.01}},
                                        {0.7, {0.95, 0.5, 0.45}, {0.08, 0.02, 0.005}}};
  for (double zmax : {0.0066, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1}) {
    const OracleResult r = oracle_bound(two, zmax);
    ASSERT_TRUE(r.feasible);
    EXPECT_NEAR(r.accuracy, brute_force_oracle(two, zmax), 1e-12) << zmax;
  }
}

TEST(Oracle, LpSolutionSatisfiesConstraintAndStrongDuality) {
  const ProxyTable t = make_synthetic_table();
  auto p = make_snr_process("gauss:0,7.5");
  const std::vector<double> prob = grid_distribution(t, *p);
  for (double zmax : {0.001, 0.0025, 0.01, 0.05, 0.2}) {
    const OracleResult r = oracle_bound(t, *p, zmax);
    ASSERT_TRUE(r.feasible);
    double acc = 0, zeta = 0;  // recomputed from the randomised policy
    for (int s = 0, k = 0; s < t.snr_count(); ++s) {
      if (prob[s] <= 0) continue;
      const int l = r.policy_left[k], h = r.policy_right[k];
      acc += prob[s] * (r.mix * t.accuracy(l, s) + (1 - r.mix) * t.accuracy(h, s));
      zeta += prob[s] * (r.mix * t.zeta(l, s) + (1 - r.mix) * t.zeta(h, s));
      ++k;
    }
    EXPECT_LE(zeta, zmax * (1 + 1e-9)) << zmax;
    EXPECT_NEAR(acc, r.accuracy, 1e-9);
    EXPECT_NEAR(r.dual_value, r.accuracy, 1e-9);  // g(λ*) = primal value
    EXPECT_GE(r.multiplier, 0.0);
  }
}

TEST(Oracle, BoundsTheControllerOnTheSameSnrs) {
  const ProxyTable t = make_synthetic_table();
  for (const std::string spec : {"gauss:10,2.5", "fixed:10", "gilbert-elliott:good=20,bad=0,p_gb=0.05,p_bg=0.2"}) {
    auto p = make_snr_process(spec);
    std::mt19937_64 rng(4);
    const std::vector<double> snr = draw_snr(*p, 20000, rng);
    for (double v : {1.0, 100.0, 1e4}) {
      for (double zmax : {0.0025, 0.01, 0.05}) {
        LyapunovController c(t, {v, 10.0, zmax});
        const SimulationResult r = simulate(c, snr, 20000, /*keep_trace=*/false);
        // Exact statement: over the realised SNRs, no sequence of decisions with mean ζ equal to
        // the controller's beats the LP over those SNRs' empirical distribution.
        std::vector<double> count(t.snr_count(), 0.0);
        for (double s : snr) count[t.nearest(s)] += 1.0 / snr.size();
        std::vector<OracleState> states;
        for (int s = 0; s < t.snr_count(); ++s)
          if (count[s] > 0)
            states.push_back({count[s], {t.accuracy_row(s), t.accuracy_row(s) + 77}, {t.zeta_row(s), t.zeta_row(s) + 77}});
        double total = 0;
        for (auto& s : states) total += s.weight;
        for (auto& s : states) s.weight /= total;
        const OracleResult o = oracle_bound(states, r.summary.zeta_mean * (1 + 1e-12));
        ASSERT_TRUE(o.feasible);
        EXPECT_GE(o.accuracy + 1e-9, r.summary.accuracy_mean) << spec << " V " << v << " zmax " << zmax;
        // The bound over the exact SNR law dominates every feasible run, up to the SNR sampling
        // of 20 000 slots (0.01 is many standard errors of a mean accuracy here).
        if (r.summary.feasible) {
          EXPECT_GE(oracle_bound(t, *p, zmax).accuracy + 0.01, r.summary.accuracy_mean);
        }
      }
    }
  }
}

// ---------------------------------------------------------------- CLI

TEST(OptimizeCli, SimulateWritesTraceSummaryAndSidecar) {
  const std::string out = test::temp_dir("cli_sim");
  std::string log;
  const std::string table = std::string(TOKCOM_TEST_DATA) + "/proxy_synthetic.csv";
  ASSERT_EQ(test::run_cli("--seed 3 optimize --table " + table + " --simulate --V 100 --mu 10 --zeta-max 0.01 "
                          "--T 2000 --window 500 --scenario gauss:10,2.5 --no-plots --out " + out, &log), 0) << log;
  const auto trace = lines_of(out + "/trace.csv");
  ASSERT_EQ(trace.size(), 2001u);
  EXPECT_EQ(trace[0], "slot,snr_db,ratio,budget,zeta,z_before,correct");
  const auto summary = lines_of(out + "/summary.csv");
  ASSERT_EQ(summary.size(), 2u);
  EXPECT_EQ(summary[0], "scenario,zeta_max,rule,V,mu,accuracy,zeta,feasible,queue_final,oracle_accuracy,oracle_zeta,gap");
  const auto meta = nlohmann::json::parse(read_file(out + "/summary.json"));
  EXPECT_EQ(meta["seed"], 3);
  EXPECT_EQ(meta["table"]["decisions"], 77);
  EXPECT_FALSE(meta["git_hash"].get<std::string>().empty());
  // Same seed → the same trace, byte for byte.
  const std::string again = test::temp_dir("cli_sim2");
  ASSERT_EQ(test::run_cli("--seed 3 optimize --table " + table + " --simulate --V 100 --mu 10 --zeta-max 0.01 "
                          "--T 2000 --window 500 --scenario gauss:10,2.5 --no-plots --out " + again, &log), 0) << log;
  EXPECT_EQ(read_file(again + "/trace.csv"), read_file(out + "/trace.csv"));
}

TEST(OptimizeCli, SearchWritesEveryRunAndBothSelections) {
  const std::string out = test::temp_dir("cli_search");
  std::string log;
  ASSERT_EQ(test::run_cli("optimize --synthetic --V-grid 1,100 --mu-grid 10 --zeta-max 0.01,0.05 "
                          "--scenarios gauss:10,2.5,fixed:20 --T 2000 --window 500 --no-plots --out " + out, &log), 0) << log;
  const auto search = lines_of(out + "/search.csv");
  ASSERT_EQ(search.size(), 1u + 2 * 2 * 2);
  EXPECT_EQ(search[0], "scenario,zeta_max,V,mu,accuracy,zeta,feasible,selected_paper,selected_reference");
  EXPECT_EQ(lines_of(out + "/summary.csv").size(), 1u + 2 * 2 * 2);  // × {paper, reference}
  EXPECT_TRUE(std::filesystem::exists(out + "/traces/trace_gauss_10_2.5_zmax0.01.csv"));
}

TEST(OptimizeCli, MalformedTraceAndMissingPairAreClearErrors) {
  const std::string out = test::temp_dir("cli_bad");
  write_text(out + "/snr.csv", "1\n2\nthree\n");
  std::string log;
  EXPECT_EQ(test::run_cli("optimize --synthetic --simulate --V 1 --mu 1 --zeta-max 0.01 --snr-trace " + out +
                          "/snr.csv --out " + out, &log), 4) << log;
  EXPECT_NE(log.find("line 3"), std::string::npos) << log;
  EXPECT_EQ(test::run_cli("optimize --synthetic --simulate --V 1 --zeta-max 0.01 --out " + out, &log), 2) << log;
  EXPECT_NE(log.find("--mu"), std::string::npos) << log;
}
