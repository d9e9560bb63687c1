namespace ActorBackup.Cluster;

/// <summary>
/// A clock that only goes forward (the time since boot), as a DateTime for code that measures spans with one: what a
/// stall watch, a backoff or a throttle compares must not jump when NTP steps the wall clock (a step forward stalled
/// healthy jobs, one back froze them for as long). Never shown, never sent, never stored.
/// </summary>
public static class Monotonic
{
    public static DateTime Now => DateTime.MinValue.AddMilliseconds(Environment.TickCount64);
}
