/** The sign-in page: NextAuth's credentials flow (POST /api/auth/callback/credentials) from a form. */

export function LoginPage({ csrfToken, next, expired }: { csrfToken: string; next: string; expired: boolean }) {
  return (
    <section class="login" aria-labelledby="login-title">
      <h1 id="login-title">LabelFleet</h1>
      <p class="muted">Sign in to run the labeling day.</p>
      {expired ? (
        <p class="notice" role="status">
          Your session has ended. Sign in again to continue.
        </p>
      ) : null}
      <form data-login-form action="/api/auth/callback/credentials" method="post" aria-label="Sign in">
        <input type="hidden" name="csrfToken" value={csrfToken} />
        <input type="hidden" name="callbackUrl" value={next} />
        <div class="form-error" role="alert" hidden></div>
        <div class="field">
          <label for="login-email">Email</label>
          <input id="login-email" name="email" type="email" autocomplete="username" required />
        </div>
        <div class="field">
          <label for="login-password">Password</label>
          <input id="login-password" name="password" type="password" autocomplete="current-password" required />
        </div>
        <div class="form-actions">
          <button type="submit" class="primary">
            Sign in
          </button>
        </div>
      </form>
    </section>
  );
}
