namespace ActorBackup.TestSupport;

/// <summary>Waiting for a condition, never for a fixed time: a busy machine only makes the wait longer.</summary>
public static class Eventually
{
    /// <summary>
    /// Asks <paramref name="get"/> until its answer satisfies <paramref name="ok"/> (failures to answer count as
    /// not yet); throws a TimeoutException naming <paramref name="what"/> after <paramref name="timeout"/> (60 s).
    /// </summary>
    public static async Task<T> Until<T>(Func<Task<T>> get, Func<T, bool> ok, string what, TimeSpan? timeout = null, Func<Exception, bool>? retryOn = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        Exception? last = null;
        while (true)
        {
            try
            {
                var value = await get();
                if (ok(value)) return value;
            }
            catch (Exception e) when (retryOn?.Invoke(e) ?? true)
            {
                last = e;
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"waited in vain for {what}", last);
            await Task.Delay(200);
        }
    }
}
