document.addEventListener("DOMContentLoaded", function () { var f = document.getElementById("form_post"); if (f) { f.submit(); } });
