using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Time.Testing;

namespace Mobility.Gns.Client.Tests;

/// <summary>
/// The choice between a GNS's addresses (IPv4 and IPv6) on virtual time: which addresses are candidates when the host
/// can use only one family, and the Happy Eyeballs race between them (head start, hand-over on failure, budget).
/// </summary>
public sealed class GnsEndPointChoiceTests
{
    private static readonly TimeSpan HeadStart = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(3);
    private static readonly GnsEndPoint V4 = new(new IPEndPoint(IPAddress.Parse("10.231.100.2"), 7353), new Uri("http://10.231.100.2:7381/"));
    private static readonly GnsEndPoint V6 = new(new IPEndPoint(IPAddress.Parse("fd00:231:100::2"), 7353), new Uri("http://[fd00:231:100::2]:7381/"));

    [Fact]
    public void An_IPv6_only_host_has_only_the_IPv6_address_as_candidate_even_while_IPv4_is_in_use()
    {
        var order = GnsEndPointChoice.Order([V4, V6], current: 0, IPv6Only);

        Assert.Equal([1], order);
    }

    [Fact]
    public void A_dual_stack_host_keeps_the_address_in_use_first()
    {
        Assert.Equal([1, 0], GnsEndPointChoice.Order([V4, V6], current: 1, _ => true));
        Assert.Equal([0, 1], GnsEndPointChoice.Order([V4, V6], current: 0, _ => true));
    }

    [Fact]
    public void A_host_with_no_route_to_any_address_has_no_candidate()
    {
        Assert.Empty(GnsEndPointChoice.Order([V4, V6], current: 0, _ => false));
    }

    [Fact]
    public async Task The_preferred_address_wins_when_it_answers_within_its_head_start()
    {
        var time = new FakeTimeProvider();
        var probes = new Probes();

        var race = GnsEndPointChoice.RaceAsync([V6, V4], probes.Run, HeadStart, Budget, time, CancellationToken.None);
        time.Advance(HeadStart - TimeSpan.FromMilliseconds(1));
        probes.Answer(V6, true);

        Assert.Same(V6, await race.WithTimeout());
        Assert.Equal([V6], probes.Started);
    }

    [Fact]
    public async Task A_silent_preferred_address_is_overtaken_after_its_head_start_and_abandoned()
    {
        var time = new FakeTimeProvider();
        var probes = new Probes();

        var race = GnsEndPointChoice.RaceAsync([V4, V6], probes.Run, HeadStart, Budget, time, CancellationToken.None);
        Assert.Equal([V4], probes.Started);
        time.Advance(HeadStart);
        await TestTimeout.Eventually(() => probes.Started.Count == 2, "the second address is probed once the head start ran out");
        probes.Answer(V6, true);

        Assert.Same(V6, await race.WithTimeout());
        await TestTimeout.Eventually(() => probes.Cancelled(V4), "the silent probe is abandoned");
    }

    [Fact]
    public async Task A_preferred_address_that_fails_hands_over_at_once_without_waiting_for_its_head_start()
    {
        var time = new FakeTimeProvider();
        var probes = new Probes();

        var race = GnsEndPointChoice.RaceAsync([V4, V6], probes.Run, HeadStart, Budget, time, CancellationToken.None);
        probes.Answer(V4, false);
        await TestTimeout.Eventually(() => probes.Started.Count == 2, "the second address is probed at once");
        probes.Answer(V6, true);

        Assert.Same(V6, await race.WithTimeout());
    }

    [Fact]
    public async Task No_answer_within_the_budget_chooses_none()
    {
        var time = new FakeTimeProvider();
        var probes = new Probes();

        var race = GnsEndPointChoice.RaceAsync([V4, V6], probes.Run, HeadStart, Budget, time, CancellationToken.None);
        time.Advance(HeadStart);
        await TestTimeout.Eventually(() => probes.Started.Count == 2, "both addresses are probed");
        time.Advance(Budget);

        Assert.Null(await race.WithTimeout());
        await TestTimeout.Eventually(() => probes.Cancelled(V4) && probes.Cancelled(V6), "both probes are abandoned");
    }

    private static bool IPv6Only(IPEndPoint endPoint) => endPoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;

    /// <summary>Probes that answer when the test says so, and remember which ones were started and cancelled.</summary>
    private sealed class Probes
    {
        private readonly ConcurrentDictionary<GnsEndPoint, TaskCompletionSource<bool>> _answers = new();
        private readonly ConcurrentDictionary<GnsEndPoint, bool> _cancelled = new();
        private readonly List<GnsEndPoint> _started = [];

        public IReadOnlyList<GnsEndPoint> Started
        {
            get
            {
                lock (_started)
                {
                    return [.. _started];
                }
            }
        }

        public async Task<bool> Run(GnsEndPoint endPoint, CancellationToken cancellationToken)
        {
            lock (_started)
            {
                _started.Add(endPoint);
            }

            try
            {
                return await Answer(endPoint).Task.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                _cancelled[endPoint] = true;
                throw;
            }
        }

        public void Answer(GnsEndPoint endPoint, bool ok) => Answer(endPoint).TrySetResult(ok);

        public bool Cancelled(GnsEndPoint endPoint) => _cancelled.ContainsKey(endPoint);

        private TaskCompletionSource<bool> Answer(GnsEndPoint endPoint) =>
            _answers.GetOrAdd(endPoint, _ => new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously));
    }
}
