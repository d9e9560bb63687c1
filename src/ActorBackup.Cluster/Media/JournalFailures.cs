using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Akka.Actor;

namespace ActorBackup.Cluster.Media;

/// <summary>
/// When each library's media agent last failed to write its journal (the node's database full, say), kept across the
/// agent's incarnations in its actor system: Akka.Persistence stops an agent whose write failed, and the next message starts
/// it again, replaying its journal; one that then tried its recovery commit at once failed and stopped again, a replay a
/// message. Until the backoff has passed (30 s after the first failure in a row, doubling up to 10 min) the agent opens
/// its library for reading only and says why; a write that succeeds clears it. Timed on a monotonic clock (callers pass <see cref="Monotonic.Now"/>):
/// a wall clock stepped back by two hours held the library read-only for two hours.
/// </summary>
public static class JournalFailures
{
    public static readonly TimeSpan First = TimeSpan.FromSeconds(30), Longest = TimeSpan.FromMinutes(10);

    private static readonly ConditionalWeakTable<ActorSystem, ConcurrentDictionary<string, (DateTime Until, TimeSpan Wait, string Why)>> Systems = new();

    private static ConcurrentDictionary<string, (DateTime Until, TimeSpan Wait, string Why)> Of(ActorSystem system) => Systems.GetOrCreateValue(system);


    /// <summary>A journal write of <paramref name="library"/>'s agent failed at <paramref name="now"/>.</summary>
    public static void Record(ActorSystem system, string library, string why, DateTime now) =>
        Of(system).AddOrUpdate(library, _ => (now + First, First, why), (_, was) =>
        {
            var wait = was.Wait * 2 < Longest ? was.Wait * 2 : Longest;
            return (now + wait, wait, why);
        });

    /// <summary>How long <paramref name="library"/>'s agent waits from <paramref name="now"/> before it tries its journal again (zero: it does not wait).</summary>
    public static TimeSpan HeldFor(ActorSystem system, string library, DateTime now) =>
        Of(system).TryGetValue(library, out var f) && now < f.Until ? f.Until - now : TimeSpan.Zero;

    /// <summary>A journal write of <paramref name="library"/>'s agent succeeded: no backoff any more.</summary>
    public static void Cleared(ActorSystem system, string library) => Of(system).TryRemove(library, out _);

    /// <summary>Why the agent does not try its journal yet at <paramref name="now"/> (and until when), or null.</summary>
    public static string? Holding(ActorSystem system, string library, DateTime now) =>
        Of(system).TryGetValue(library, out var f) && now < f.Until
            ? $"library {library}: its media agent's journal (its node's database) could not be written ({f.Why}); it reads but takes no writes, " +
              $"and tries again in {Math.Ceiling((f.Until - now).TotalSeconds):F0} s (at {DateTime.UtcNow + (f.Until - now):HH:mm:ss} UTC): free space where that node keeps its database, or check the database"
            : null;
}
